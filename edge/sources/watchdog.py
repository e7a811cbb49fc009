"""Source workers (one reader thread per camera) and the watchdog that restarts them.

`cv2.VideoCapture.read()` can hang for ~90 s on a dropped RTSP stream, and a USB camera
can vanish, so each source runs in its own daemon reader thread. The watchdog checks
every worker: a worker whose source produced nothing for `stall_timeout_s` while it was
reading (not while it waited on a full `block` queue) is abandoned: its thread is left to
die on its own (any frame it still returns is discarded), its source is closed from a
helper thread (close can hang too), and a fresh source is opened in a new thread after a
back-off that doubles on each consecutive failure up to `backoff_max_s`.

Frame ids are per source, contiguous across restarts.

Thread safety: `SourceWorker` state is guarded by its own lock; the watchdog and the
reader threads call into it concurrently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from edge.frames import Frame
from edge.sources.base import IDLE, Capture, Source
from edge.sources.queues import SourceQueues
from edge.sources.trigger import NotTriggerable, Ticket, TriggerGate

log = logging.getLogger(__name__)


class SourceEvents(Protocol):
    """What a worker reports; `edge/health/metrics.py`'s Metrics implements it."""

    def frame_captured(self, source_id: str) -> None: ...
    def source_stalled(self, source_id: str) -> None: ...
    def source_restarted(self, source_id: str, reason: str) -> None: ...


class NoEvents:
    def frame_captured(self, source_id: str) -> None:
        pass

    def source_stalled(self, source_id: str) -> None:
        pass

    def source_restarted(self, source_id: str, reason: str) -> None:
        pass


class SourceWorker:
    """Reads one source in a thread and feeds its queue lane; restartable by the watchdog."""

    def __init__(
        self,
        source_id: str,
        make_source: Callable[[], Source],
        queues: SourceQueues,
        stop: threading.Event,
        stall_timeout_s: float = 10.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
        events: SourceEvents | None = None,
        gate: TriggerGate | None = None,
    ) -> None:
        self.source_id = source_id
        self.gate = gate  # PLC-triggered: read only when asked (edge/sources/trigger.py)
        self._make_source = make_source
        self._queues = queues
        self._stop = stop
        self.stall_timeout_s = stall_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._backoff_s = backoff_initial_s
        self._events = events or NoEvents()
        self._lock = threading.Lock()
        self._generation = 0
        self._next_frame_id = 0
        self._last_progress = time.monotonic()
        self._putting = False
        self._awaiting_trigger = False
        self._source: Source | None = None
        self._reader: threading.Thread | None = None
        self.finished = threading.Event()  # a finite source ended (file, folder, synthetic)
        self.restarts = 0
        self.stalls = 0

    def start(self) -> None:
        self._spawn(self._generation, delay_s=0.0)

    def _spawn(self, generation: int, delay_s: float) -> None:
        thread = threading.Thread(
            target=self._run, args=(generation, delay_s), name=f"source-{self.source_id}-{generation}", daemon=True
        )
        self._reader = thread
        thread.start()

    def is_stalled(self, now: float) -> bool:
        with self._lock:
            idle = now - self._last_progress
            waiting = self._putting or self._awaiting_trigger  # on the queue or the PLC: not a stalled camera
            return not self.finished.is_set() and not waiting and idle > self.stall_timeout_s

    def restart(self, reason: str) -> None:
        """Abandon the current reader (it may be hung) and start a fresh one after back-off."""
        with self._lock:
            self._generation += 1
            generation = self._generation
            old, self._source = self._source, None
            self._last_progress = time.monotonic() + self._backoff_s  # the back-off is not a stall
            delay_s = self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)
            self.restarts += 1
        if reason == "stall":
            self.stalls += 1
            self._events.source_stalled(self.source_id)
        self._events.source_restarted(self.source_id, reason)
        log.warning("source %s: %s; reopening in %.1f s", self.source_id, reason, delay_s)
        if old is not None:
            threading.Thread(target=_close_quietly, args=(old,), daemon=True).start()
        self._spawn(generation, delay_s)

    def stop(self, join_timeout_s: float = 5.0) -> None:
        """Stop reading; wait up to `join_timeout_s` for the reader thread to leave its source.

        Waiting matters at exit: a reader still inside OpenCV/FFmpeg while the interpreter
        tears down native libraries aborts the process. A reader hung longer (a dead RTSP
        stream) is left behind with a warning rather than holding up the shutdown.
        """
        with self._lock:
            self._generation += 1
            old, self._source = self._source, None
            reader = self._reader
        if old is not None:
            _close_quietly(old)
        if reader is not None and reader is not threading.current_thread():
            reader.join(join_timeout_s)
            if reader.is_alive():
                log.warning(
                    "source %s: reader still busy after %.0f s; leaving it behind", self.source_id, join_timeout_s
                )

    def _current(self, generation: int) -> bool:
        return generation == self._generation and not self._stop.is_set()

    def _run(self, generation: int, delay_s: float) -> None:
        if delay_s > 0 and self._stop.wait(delay_s):
            return
        with self._lock:
            if not self._current(generation):
                return
            self._last_progress = time.monotonic()
            source = self._source = self._make_source()
        try:
            source.open()
            self._read_loop(source, generation)
        except Exception as error:  # a camera failing is routine: log, back off, reopen
            log.warning("source %s failed: %s", self.source_id, error)
            _close_quietly(source)
            if self._current(generation):
                self.restart("error")
            return
        _close_quietly(source)

    def _read_loop(self, source: Source, generation: int) -> None:
        ticket = None  # the PLC request this read answers (triggered sources)
        try:
            while self._current(generation):
                if self.gate is not None and ticket is None:
                    ticket = self._await_trigger()
                    if ticket is None:
                        return
                capture = source.read()
                if capture is None:
                    if self._current(generation):
                        log.info("source %s ended", self.source_id)
                        self.finished.set()
                        if self.gate is not None:
                            self.gate.fail_all("the source ended")
                    if ticket is not None:
                        ticket.fail("the source ended")
                    return
                if capture is IDLE:  # a triggered camera keeps its request until the frame comes
                    with self._lock:
                        if self._current(generation):
                            self._last_progress = time.monotonic()
                    continue
                delivered = self._deliver(capture, generation, ticket)
                ticket = None
                if not delivered:
                    return
        finally:
            if ticket is not None and not ticket.answered.is_set():
                ticket.fail("the camera failed before the triggered frame was read")

    def _await_trigger(self):
        with self._lock:
            self._awaiting_trigger = True
        try:
            return self.gate.wait(self._stop)
        finally:
            with self._lock:
                self._awaiting_trigger = False
                self._last_progress = time.monotonic()

    def _deliver(self, capture: Capture, generation: int, ticket: Ticket | None = None) -> bool:
        captured_ns = time.monotonic_ns()
        with self._lock:
            if not self._current(generation):
                # an abandoned reader came back, or capture stopped while this frame was read:
                # discard it and count it, so frames read == inspected + dropped holds
                drop = getattr(self._events, "frame_dropped", None)
                if drop is not None:
                    drop(self.source_id, "shutdown" if self._stop.is_set() else "abandoned_reader", 1)
                if ticket is not None:
                    ticket.fail("the station is stopping" if self._stop.is_set() else "the camera was restarted")
                return False
            frame_id = self._next_frame_id
            self._next_frame_id += 1
            self._last_progress = time.monotonic()
            self._backoff_s = self._backoff_initial_s
            self._putting = True
        frame = Frame(
            source_id=self.source_id,
            frame_id=frame_id,
            image=capture.image,
            captured_unix_s=capture.captured_unix_s if capture.captured_unix_s is not None else time.time(),
            stamps_ns={"captured": captured_ns},
            truth=capture.truth,
        )
        self._events.frame_captured(self.source_id)
        if ticket is not None:
            ticket.done(frame.frame_id, frame.captured_unix_s)
        try:
            return self._queues.put(frame, self._stop)
        finally:
            with self._lock:
                self._putting = False
                self._last_progress = time.monotonic()


class Watchdog:
    """Checks every worker each `check_interval_s` and restarts the stalled ones."""

    def __init__(self, workers: list[SourceWorker], stop: threading.Event, check_interval_s: float = 0.5) -> None:
        self._workers = workers
        self._stop = stop
        self._interval_s = check_interval_s
        self._thread = threading.Thread(target=self._run, name="source-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            now = time.monotonic()
            for worker in self._workers:
                if worker.is_stalled(now):
                    worker.restart("stall")


def _close_quietly(source: Source) -> None:
    try:
        source.close()
    except Exception as error:
        log.debug("closing a source failed: %s", error)


class SourceSet:
    """All of a station's sources: their queue lanes, reader workers and the watchdog.

    Built by `edge/app.py` (or a test), handed to the pipeline, which starts and stops it.
    `capture_stop` stops capture only; the pipeline then drains what is queued.
    """

    def __init__(self, events: SourceEvents | None = None, check_interval_s: float = 0.5) -> None:
        self.events = events or NoEvents()
        self.capture_stop = threading.Event()
        self.queues = SourceQueues(
            on_drop=getattr(self.events, "frame_dropped", None), on_block=getattr(self.events, "source_blocked", None)
        )
        self.workers: list[SourceWorker] = []
        self._watchdog = Watchdog(self.workers, self.capture_stop, check_interval_s)

    def add(
        self,
        source_id: str,
        make_source: Callable[[], Source],
        policy: str = "block",
        queue_capacity: int = 4,
        staleness_budget_ms: float | None = None,
        stall_timeout_s: float = 10.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
        plc_trigger: bool = False,
    ) -> SourceWorker:
        if any(w.source_id == source_id for w in self.workers):
            raise ValueError(f"two sources are named {source_id!r}")
        self.queues.add_source(source_id, policy, queue_capacity, staleness_budget_ms)
        worker = SourceWorker(
            source_id,
            make_source,
            self.queues,
            self.capture_stop,
            stall_timeout_s,
            backoff_initial_s,
            backoff_max_s,
            self.events,
            TriggerGate(source_id) if plc_trigger else None,
        )
        self.workers.append(worker)
        return worker

    def trigger(self, source_id: str, timeout_s: float = 5.0) -> tuple[int, float]:
        """Ask a PLC-triggered source for its next frame; (frame id, capture unix s) once it is read."""
        worker = next((w for w in self.workers if w.source_id == source_id), None)
        if worker is None:
            raise NotTriggerable(f"no source named {source_id!r}")
        if worker.gate is None:
            raise NotTriggerable(f"source {source_id} is not PLC-triggered (set plc_trigger: true in its config)")
        ticket = worker.gate.request(timeout_s)
        return ticket.frame_id, ticket.captured_unix_s

    def start(self) -> None:
        for worker in self.workers:
            worker.start()
        self._watchdog.start()

    def all_finished(self) -> bool:
        return bool(self.workers) and all(w.finished.is_set() for w in self.workers)

    def stop(self) -> None:
        self.capture_stop.set()
        deadline = time.monotonic() + 5.0  # one wait for all readers, not 5 s per hung camera
        for worker in self.workers:
            if worker.gate is not None:
                worker.gate.fail_all("the station is stopping")
            worker.stop(join_timeout_s=max(0.0, deadline - time.monotonic()))
        self._watchdog.join(timeout_s=2.0)
