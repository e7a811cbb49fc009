"""The contracts sinks fulfil. A failing sink never stops the loop: the pipeline wraps
each call, logs and counts the failure and reports it in health.

Every sink takes results in one shape, `handle(result, image)`: the frame's BGR image
comes along for sinks that keep it (the archive) and is ignored by the others, so the
pipeline calls every sink the same way. Explanations arrive later, from the explainer's
thread, only at sinks that implement `ExplanationSink` (MQTT, the log).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from edge.results import InspectionResult


class Sink(Protocol):
    def handle(self, result: InspectionResult, image: np.ndarray | None = None) -> None:
        """Take one result (and its frame); must not block for long (queue or persist, then return)."""

    def close(self) -> None:
        """Flush what can be flushed and release resources; idempotent."""


@runtime_checkable
class ExplanationSink(Protocol):
    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        """Take an explanation produced later for an earlier result (same inspection id)."""


def explanation_sinks(sinks) -> list[ExplanationSink]:
    """The sinks among `sinks` (in their order) that take explanations."""
    return [sink for sink in sinks if isinstance(sink, ExplanationSink)]
