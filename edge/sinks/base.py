"""The contract every sink fulfils. A failing sink never stops the loop: the pipeline
wraps each call, logs and counts the failure and reports it in health."""

from __future__ import annotations

from typing import Protocol

from edge.results import InspectionResult


class Sink(Protocol):
    def handle(self, result: InspectionResult) -> None:
        """Take one result; must not block for long (queue or persist, then return)."""

    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        """Take an explanation produced later for an earlier result (same inspection id)."""

    def close(self) -> None:
        """Flush what can be flushed and release resources; idempotent."""
