"""The demo's extra station sink: what the station produced, with its stage stamps."""

from __future__ import annotations

import threading
import time


class Recorder:
    """Extra station sink: what the station produced, with its stage stamps.

    Called on the pipeline thread after the MQTT sink, so its own stamp is when the outbox
    commit returned; explanations arrive from the explainer thread (lock)."""

    def __init__(self) -> None:
        self.results: dict[str, dict] = {}
        self.explained: dict[str, str] = {}
        self._lock = threading.Lock()

    def handle(self, result, image=None) -> None:
        stamps = {**result.stamps_ns, "outboxed": time.monotonic_ns()}
        with self._lock:
            self.results[result.inspection_id] = {
                "frame_id": result.frame_id,
                "sequence": result.sequence,
                "verdict": result.verdict,
                "stamps": stamps,
            }

    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        with self._lock:
            self.explained[inspection_id] = text

    def count(self, verdict: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.results.values() if verdict is None or r["verdict"] == verdict)

    def close(self) -> None:
        pass
