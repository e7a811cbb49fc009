"""The station's main loop: queued frames -> micro-batch -> runner -> verdict -> sinks.

    while not stop:
        batch = take up to max_batch frames across cameras (wait <= max_wait_ms to fill)
        results = inspect(batch)      # bad frames -> REJECTED with a reason, never raised
        for result in results: every sink.handle(result, image)   # a failing sink is counted
    stop capture; inspect what is still queued; return a summary

Sequence numbers run from `first_sequence` with no gaps, one per frame, in the order the
frames were taken. `inspection_id` = "<station>-<source>-<capture unix ns>-<frame id>":
derived from the frame itself, so it is stable across publish retries and, with the
capture time in it, unique across restarts even though frame ids restart at 0.

Blank frames (pixel standard deviation below `blank_max_std` grey levels: lens covered,
lights off, a dead sensor) are REJECTED before inference: a model may call them OK.

Thread safety: `run` executes in the caller's thread; sources fill the queues from
their own threads; sinks are called from this thread only. While it runs, the
interpreter's GIL switch interval is `_SWITCH_INTERVAL_S` (restored after): a background
thread (MQTT dispatcher, paho, explainer) then hands the GIL back to the camera loop
within 1 ms instead of Python's default 5 ms, which showed as p99 latency.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from edge.frames import Frame
from edge.health.metrics import Metrics
from edge.results import InspectionResult
from edge.runners.base import Runner
from edge.sinks.base import Sink
from edge.sources.watchdog import SourceSet
from edge.verdict import ThresholdOverrides, decide, rejected, to_result

log = logging.getLogger(__name__)

_SWITCH_INTERVAL_S = 0.001
_BLANK_GRID = 64  # the blank check samples at most 64 x 64 pixels, then confirms on the full frame


@dataclass
class PipelineSummary:
    frames: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    sink_failures: int = 0
    last_sequence: int = 0


class Pipeline:
    def __init__(
        self,
        station_id: str,
        sources: SourceSet,
        runner: Runner,
        sinks: dict[str, Sink],
        overrides: ThresholdOverrides | None = None,
        metrics: Metrics | None = None,
        max_batch: int = 1,
        max_wait_ms: float = 0.0,
        wrong_size: Literal["resize", "reject"] = "reject",
        first_sequence: int = 1,
        blank_max_std: float = 0.0,
    ) -> None:
        self._station = station_id
        self._sources = sources
        self._runner = runner
        self._manifest = runner.manifest
        self._sinks = sinks
        self._overrides = overrides or ThresholdOverrides()
        self.metrics = metrics or (sources.events if isinstance(sources.events, Metrics) else Metrics())
        self.metrics.watch_queues(sources.queues.depth)
        self._max_batch = max(1, min(max_batch, runner.max_batch or max_batch))
        self._max_wait_s = max_wait_ms / 1000.0
        self._wrong_size = wrong_size
        self._next_sequence = first_sequence
        self._blank_max_std = blank_max_std  # grey levels; 0 disables the check
        self.summary = PipelineSummary(last_sequence=first_sequence - 1)

    def run(self, stop: threading.Event) -> PipelineSummary:
        """Run until `stop` is set or every (finite) source has ended and its queue is empty."""
        queues = self._sources.queues
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, _SWITCH_INTERVAL_S))
        self._sources.start()
        try:
            while not stop.is_set():
                batch = queues.take_batch(self._max_batch, self._max_wait_s, timeout_s=0.1)
                if batch:
                    self._process(batch)
                elif self._sources.all_finished() and queues.total_depth() == 0:
                    break
        finally:
            try:
                self._sources.stop()
                while batch := queues.take_batch(self._max_batch, 0.0, timeout_s=0.0):
                    self._process(batch)  # finish in-flight frames: they are real parts
            finally:
                sys.setswitchinterval(switch_interval)
        return self.summary

    def _process(self, batch: list[Frame]) -> None:
        now = time.monotonic_ns()
        batch = [f.stamped("dequeued", now) for f in batch]
        results: list[InspectionResult | None] = [None] * len(batch)
        ready: list[tuple[int, Frame, np.ndarray]] = []
        for index, frame in enumerate(batch):
            image, problem = self._model_input(frame)
            if problem:
                results[index] = self._result_for(frame, rejected(problem))
            else:
                ready.append((index, frame, image))
        for index, result in self._infer(ready):
            results[index] = result
        for frame, result in zip(batch, results):
            self._emit(result, frame.image)

    def _model_input(self, frame: Frame) -> tuple[np.ndarray | None, str]:
        """The image as the engine takes it, or a reason why this frame cannot be inspected."""
        image, spec = frame.image, self._manifest.input
        if image is None or not isinstance(image, np.ndarray) or image.size == 0:
            return None, "empty frame"
        if image.ndim != 3 or image.shape[2] != spec.channels:
            return None, f"frame has shape {image.shape}, expected HxWx{spec.channels} ({spec.channel_order})"
        if image.dtype != np.uint8:
            return None, f"frame has dtype {image.dtype}, expected uint8"
        if self._blank_max_std > 0:
            std = _blank_std(image, self._blank_max_std)
            if std < self._blank_max_std:
                return None, (
                    f"frame is blank (std {std:.2f} < {self._blank_max_std:g}): "
                    "lens covered, lights off or camera fault?"
                )
        if image.shape[:2] != (spec.height, spec.width):
            if self._wrong_size == "reject":
                return (
                    None,
                    f"frame is {image.shape[1]}x{image.shape[0]} px, the model takes {spec.width}x{spec.height} (set "
                    "frames.wrong_size: resize to accept)",
                )
            image = cv2.resize(image, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
        return image, ""

    def _infer(self, ready: list[tuple[int, Frame, np.ndarray]]):
        for start in range(0, len(ready), self._max_batch):
            chunk = ready[start : start + self._max_batch]
            # one frame: a view (no copy) unless the image is not contiguous
            stacked = (
                np.ascontiguousarray(chunk[0][2][None])
                if len(chunk) == 1
                else np.stack([image for _, _, image in chunk])
            )
            if self._runner.fixed_batch and len(chunk) < self._runner.max_batch:  # fixed batch: pad
                pad = np.zeros((self._runner.max_batch - len(chunk), *stacked.shape[1:]), np.uint8)
                stacked = np.concatenate([stacked, pad])
            began = time.monotonic_ns()
            try:
                outputs = self._runner.run(stacked)
            except Exception as error:  # an engine failure rejects these frames, the loop goes on
                log.exception("inference failed on a batch of %d", len(chunk))
                for index, frame, _ in chunk:
                    yield (
                        index,
                        self._result_for(frame.stamped("preprocessed", began), rejected(f"inference failed: {error}")),
                    )
                continue
            done = time.monotonic_ns()
            self.metrics.stage("inference", (done - began) / 1e9)
            for row, (index, frame, _) in enumerate(chunk):
                frame = frame.stamped("preprocessed", began).stamped("inferred", done)
                sequence, inspection_id = self._identity(frame)
                result = decide(
                    {k: v[row] for k, v in outputs.items()},
                    self._manifest,
                    self._overrides,
                    frame,
                    inspection_id,
                    sequence,
                )
                yield index, result

    def _result_for(self, frame: Frame, decision) -> InspectionResult:
        sequence, inspection_id = self._identity(frame)
        return to_result(decision, frame, self._manifest, inspection_id, sequence)

    def _identity(self, frame: Frame) -> tuple[int, str]:
        sequence = self._next_sequence
        self._next_sequence += 1
        return sequence, f"{self._station}-{frame.source_id}-{int(frame.captured_unix_s * 1e9)}-{frame.frame_id}"

    def _emit(self, result: InspectionResult, image: np.ndarray | None) -> None:
        result.stamps_ns["decided"] = time.monotonic_ns()
        for name, sink in self._sinks.items():
            try:
                sink.handle(result, image)
            except Exception as error:  # a failing sink never stops the loop: log, count, report
                self.summary.sink_failures += 1
                self.metrics.sink_failed(name)
                log.warning("sink %s failed on %s: %s", name, result.inspection_id, error)
        published = time.monotonic_ns()
        self.summary.frames += 1
        self.summary.last_sequence = result.sequence
        self.summary.verdicts[result.verdict] = self.summary.verdicts.get(result.verdict, 0) + 1
        self.metrics.result(result, published)


def _blank_std(image: np.ndarray, limit: float) -> float:
    """The largest per-channel standard deviation (grey levels), from a sparse grid first
    (~40 us on any frame size); the full frame only confirms a frame that looks blank."""
    h, w = image.shape[:2]
    grid = np.ascontiguousarray(image[:: max(1, h // _BLANK_GRID), :: max(1, w // _BLANK_GRID)])
    std = float(cv2.meanStdDev(grid)[1].max())
    if std >= 2 * limit:
        return std
    return float(cv2.meanStdDev(image)[1].max())
