"""The station's main loop: queued frames -> micro-batch -> runner -> verdict -> sinks.

Two stages on two threads, so inference never waits for the previous frame's bookkeeping:

    inference thread (the caller of `run`):
        while not stop:
            batch = take up to max_batch frames across cameras (wait <= max_wait_ms to fill)
            checks + runner.run(batch)        # bad frames -> REJECTED with a reason, never raised
            hand each frame, in order, to the finishing stage (bounded: blocks when full)
    finishing thread ("pipeline-finish"):
        verdict (thresholds, regions, mask) -> every sink.handle(result, image)

On stop: stop capture, inspect what is still queued, let the finishing stage empty its
hand-off, return a summary. The hand-off holds at most `handoff_capacity` frames; when
the sinks fall that far behind, inference waits (back-pressure reaches the source queues
and their drop policies, exactly as when inference itself is slow), so memory stays
bounded and nothing is lost. One finishing thread keeps results in sequence order.

Sequence numbers run from `first_sequence` with no gaps, one per frame, in the order the
frames were taken. `inspection_id` = "<station>-<source>-<capture unix ns>-<frame id>":
derived from the frame itself, so it is stable across publish retries and, with the
capture time in it, unique across restarts even though frame ids restart at 0.

Blank frames (pixel standard deviation below `blank_max_std` grey levels: lens covered,
lights off, a dead sensor) are REJECTED before inference: a model may call them OK.

Each result carries `cpu_ns`: the CPU time (thread time, not wall time) each stage of
this process's own threads spent on the frame ("preprocess", "inference" (the calling
thread's share of the model), "verdict", "sink:<name>"), for `bench line`.

Thread safety: sources fill the queues from their own threads; sinks are called from the
finishing thread only. While it runs, the interpreter's GIL switch interval is
`_SWITCH_INTERVAL_S` (restored after): a background thread (MQTT dispatcher, paho,
explainer) then hands the GIL back within 1 ms instead of Python's default 5 ms, which
showed as p99 latency.
"""

from __future__ import annotations

import gc
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from edge.frames import Frame, inspection_id
from edge.health.metrics import Metrics
from edge.results import InspectionResult
from edge.runners.base import Runner
from edge.sinks.base import Sink
from edge.sources.watchdog import SourceSet
from edge.verdict import Decision, ThresholdOverrides, decide, rejected, to_result

log = logging.getLogger(__name__)

_SWITCH_INTERVAL_S = 0.001
_DONE = None  # tells the finishing stage that no more frames come
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
        handoff_capacity: int = 8,
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
        # (frame, outputs row or None, Decision or None, sequence, inspection id, cpu_ns)
        self._handoff: queue.Queue = queue.Queue(maxsize=max(1, handoff_capacity))

    def run(self, stop: threading.Event) -> PipelineSummary:
        """Run until `stop` is set or every (finite) source has ended and its queue is empty."""
        queues = self._sources.queues
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, _SWITCH_INTERVAL_S))
        # Everything built so far (runner, sinks, servers, libraries) lives for the whole run:
        # frozen, the collector's full passes no longer walk it. A full pass over it held the
        # GIL for tens of milliseconds, a p99 spike for every camera.
        gc.collect()
        gc.freeze()
        finisher = threading.Thread(target=self._finish_all, name="pipeline-finish", daemon=True)
        finisher.start()
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
                self._handoff.put(_DONE)
                finisher.join()  # every handed-off frame reaches the sinks before run returns
                sys.setswitchinterval(switch_interval)
                gc.unfreeze()
        return self.summary

    def _process(self, batch: list[Frame]) -> None:
        """Checks and inference for one batch; each frame goes on to the finishing stage in order."""
        cpu_began = time.thread_time_ns()
        now = time.monotonic_ns()
        batch = [f.stamped("dequeued", now) for f in batch]
        finished: list[tuple[Frame, dict | None, Decision | None]] = [(f, None, None) for f in batch]
        ready: list[tuple[int, Frame, np.ndarray]] = []
        for index, frame in enumerate(batch):
            image, problem = self._model_input(frame)
            if problem:
                finished[index] = (frame, None, rejected(problem))
            else:
                ready.append((index, frame, image))
        inference_ns = [0] * len(batch)
        for index, frame, outputs, decision, cpu_ns in self._infer(ready):
            finished[index] = (frame, outputs, decision)
            inference_ns[index] = cpu_ns
        # everything this thread spent on the batch except the model, shared by its frames
        preprocess_ns = (time.thread_time_ns() - cpu_began - sum(inference_ns)) // len(batch)
        for (frame, outputs, decision), model_ns in zip(finished, inference_ns):
            sequence, result_id = self._identity(frame)
            cpu = {"preprocess": preprocess_ns, "inference": model_ns}
            self._handoff.put((frame, outputs, decision, sequence, result_id, cpu))

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
        """Yields (index, frame, outputs row or None, Decision if rejected else None, inference CPU ns)."""
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
            began, cpu_began = time.monotonic_ns(), time.thread_time_ns()
            try:
                outputs = self._runner.run(stacked)
            except Exception as error:  # an engine failure rejects these frames, the loop goes on
                log.exception("inference failed on a batch of %d", len(chunk))
                for index, frame, _ in chunk:
                    yield index, frame.stamped("preprocessed", began), None, rejected(f"inference failed: {error}"), 0
                continue
            done = time.monotonic_ns()
            cpu_ns = (time.thread_time_ns() - cpu_began) // len(chunk)
            self.metrics.stage("inference", (done - began) / 1e9)
            for row, (index, frame, _) in enumerate(chunk):
                frame = frame.stamped("preprocessed", began).stamped("inferred", done)
                yield index, frame, {k: v[row] for k, v in outputs.items()}, None, cpu_ns

    def _identity(self, frame: Frame) -> tuple[int, str]:
        sequence = self._next_sequence
        self._next_sequence += 1
        return sequence, inspection_id(self._station, frame.source_id, frame.captured_unix_s, frame.frame_id)

    def _finish_all(self) -> None:
        """The finishing stage: verdicts and sinks, one frame at a time, in hand-off order."""
        while (item := self._handoff.get()) is not _DONE:
            frame, outputs, decision, sequence, result_id, cpu_ns = item
            try:
                result = self._result(frame, outputs, decision, sequence, result_id, cpu_ns)
            except Exception as error:  # never lose a part: an unexpected failure is a REJECTED result
                log.exception("finishing %s failed", result_id)
                result = to_result(
                    rejected(f"post-processing failed: {error}"), frame, self._manifest, result_id, sequence
                )
            try:
                self._emit(result, frame.image)
            except Exception:  # this thread must outlive any one part, or inference would wait for ever
                log.exception("handing %s to the sinks failed", result_id)

    def _result(self, frame, outputs, decision, sequence: int, result_id: str, cpu_ns: dict) -> InspectionResult:
        began = time.thread_time_ns()
        if outputs is None:
            result = to_result(decision, frame, self._manifest, result_id, sequence)
        else:
            result = decide(outputs, self._manifest, self._overrides, frame, result_id, sequence)
        result.cpu_ns.update(cpu_ns, verdict=time.thread_time_ns() - began)
        return result

    def _emit(self, result: InspectionResult, image: np.ndarray | None) -> None:
        result.stamps_ns["decided"] = time.monotonic_ns()
        for name, sink in self._sinks.items():
            began = time.thread_time_ns()
            try:
                sink.handle(result, image)
                result.cpu_ns[f"sink:{name}"] = time.thread_time_ns() - began
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
