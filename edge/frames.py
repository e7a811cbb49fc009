"""The frame value object that travels from a source through the pipeline to the sinks."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One camera image and where it has been.

    `image` is HxWx3 uint8 BGR (OpenCV's order). `stamps_ns` maps a stage name
    ("captured", "queued", "preprocessed", "inferred", "published", ...) to
    `time.monotonic_ns()` when the frame left that stage; `captured_unix_s` is wall
    clock time for people and PLCs. `truth` carries ground truth where the source
    knows it (synthetic line, recorded sidecar), else None.
    """

    source_id: str
    frame_id: int
    image: np.ndarray
    captured_unix_s: float
    stamps_ns: dict[str, int] = field(default_factory=dict)
    truth: dict | None = None

    def stamped(self, stage: str, when_ns: int) -> Frame:
        """A copy with one more stage time (frames are shared across threads: never mutate)."""
        return replace(self, stamps_ns={**self.stamps_ns, stage: when_ns})


def inspection_id(station_id: str, source_id: str, captured_unix_s: float, frame_id: int) -> str:
    """ "<station>-<source>-<capture unix ns>-<frame id>": derived from the frame itself, so it
    is stable across publish retries, known as soon as the frame is read (a PLC trigger
    answers with it), and unique across restarts although frame ids restart at 0."""
    return f"{station_id}-{source_id}-{int(captured_unix_s * 1e9)}-{frame_id}"
