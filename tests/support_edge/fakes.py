"""Hand-written fakes for edge tests: list sources, hanging sources, collecting sinks."""

from __future__ import annotations

import threading
import time

import numpy as np

from edge.results import InspectionResult
from edge.sources.base import Capture
from eiad.errors import SourceError


class ListSource:
    """Delivers the given images in order, then ends (None). `delay_s` paces the reads."""

    def __init__(
        self, source_id: str, images: list[np.ndarray], delay_s: float = 0.0, truths: list[dict] | None = None
    ) -> None:
        self.source_id = source_id
        self._images = list(images)
        self._truths = truths
        self._delay_s = delay_s
        self._index = 0
        self.opened = 0
        self.closed = 0

    def open(self) -> None:
        self.opened += 1

    def read(self) -> Capture | None:
        if self._index >= len(self._images):
            return None
        if self._delay_s:
            time.sleep(self._delay_s)
        image = self._images[self._index]
        truth = self._truths[self._index] if self._truths else None
        self._index += 1
        return Capture(image=image, truth=truth)

    def close(self) -> None:
        self.closed += 1


class HangingSource:
    """Delivers `before_hang` frames, then blocks in read() until released (a dropped RTSP stream)."""

    def __init__(self, source_id: str, image: np.ndarray, before_hang: int, release: threading.Event) -> None:
        self.source_id = source_id
        self._image = image
        self._left = before_hang
        self._release = release

    def open(self) -> None:
        pass

    def read(self) -> Capture | None:
        if self._left > 0:
            self._left -= 1
            return Capture(image=self._image)
        self._release.wait(30.0)
        return Capture(image=self._image)  # the abandoned thread's late frame must be discarded

    def close(self) -> None:
        pass


class FailingOpenSource:
    """A camera that is not there."""

    def __init__(self, source_id: str) -> None:
        self.source_id = source_id

    def open(self) -> None:
        raise SourceError(f"{self.source_id}: no such camera")

    def read(self) -> Capture | None:
        raise AssertionError("read after a failed open")

    def close(self) -> None:
        pass


class CollectingSink:
    """Keeps every result; thread-safe."""

    def __init__(self) -> None:
        self.results: list[InspectionResult] = []
        self.explanations: list[tuple[str, str, dict]] = []
        self.closed = False
        self._lock = threading.Lock()

    def handle(self, result: InspectionResult, image=None) -> None:
        with self._lock:
            self.results.append(result)

    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        self.explanations.append((inspection_id, text, meta))

    def close(self) -> None:
        self.closed = True


class FailingSink(CollectingSink):
    """Raises on every `every`-th result (and keeps the others)."""

    def __init__(self, every: int = 1) -> None:
        super().__init__()
        self._every = every
        self.calls = 0

    def handle(self, result: InspectionResult, image=None) -> None:
        self.calls += 1
        if self.calls % self._every == 0:
            raise ConnectionError("broker unreachable (test)")
        super().handle(result)
