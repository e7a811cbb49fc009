"""A helper process the station owns (the operator page's server): started and stopped
with the station, fed through a bounded queue, asking the station questions through a pipe.

Why a process and not a thread: a web server's work (encoding pictures, serving event
streams, SQLite) in the station's own process holds the interpreter lock in between
inferences and stretched the verdicts' p99 by several milliseconds with a few browsers
open. In its own process it shares only CPU time, and it runs at a lower priority
(`priority`: a nice value, or Linux's idle class), so on a busy box the inspection loop goes
first.

    station:  offer(item) --put_nowait--> bounded queue --> child: items()
              answer thread <--pipe--> child: ask(kind, *args)     (health, ...)
              counters()    <--shared array-- child: set_counters()

Guarantees: `offer` never waits (a full queue or a dead child: the item is refused and
counted by the caller); the child ignores SIGINT/SIGTERM (a Ctrl-C or a service stop
reaches the station, which then closes the child after its last results) and exits by
itself when the station dies; `close` lets the child store what is queued, then stops it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from pydantic import Field

log = logging.getLogger(__name__)

_STOP = None  # the queue's last item

# A helper's CPU priority in the station YAML: a nice value, or "idle" (see lower_priority).
HelperPriority = Annotated[int, Field(ge=0, le=19)] | Literal["idle"]


class Sidecar:
    """The station's side. `target(child, *args)` runs in the new process with a `SidecarChild`."""

    def __init__(
        self,
        name: str,
        target: Callable,
        args: tuple,
        queue_size: int,
        counters: int,
        answer: Callable[[str, tuple], Any],
        priority: int | str = 0,
    ) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        self.name = name
        self._queue = context.Queue(maxsize=queue_size)
        self._counters = context.Array("q", counters, lock=False)
        self._station_end, child_end = context.Pipe()
        ready_end, self._child_ready = context.Pipe(duplex=False)
        parts = (self._queue, child_end, self._counters, self._child_ready)
        self._process = context.Process(
            target=_child_main, args=(parts, priority, target, args), name=name, daemon=True
        )
        self._answer = answer
        self._ready_end = ready_end
        self._answering: threading.Thread | None = None
        self._closed = False
        self._refused_lock = threading.Lock()
        self.refused = 0  # items the child could not take (queue full, child gone, closed)
        self._told_gone = False

    def start(self, timeout_s: float = 30.0) -> Any:
        """Start the child; returns what it reported as ready, or raises RuntimeError with its message."""
        self._process.start()
        self._child_ready.close()  # the child holds its own copy
        if not self._ready_end.poll(timeout_s):
            self._kill()
            raise RuntimeError(f"{self.name} did not start within {timeout_s:.0f} s")
        try:
            ok, info = self._ready_end.recv()
        except EOFError:
            self._kill()
            raise RuntimeError(f"{self.name} ended while starting (exit code {self._process.exitcode})") from None
        if not ok:
            self._kill()
            raise RuntimeError(info)
        self._answering = threading.Thread(target=self._answer_loop, name=f"{self.name}-answers", daemon=True)
        self._answering.start()
        return info

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def offer(self, item: Any) -> bool:
        """Hand one item to the child without waiting; False (counted in `refused`) when its
        queue is full or it is gone (said once in the log)."""
        if not self._closed and self._process.is_alive():
            try:
                self._queue.put_nowait(item)
                return True
            except queue.Full:
                pass
        with self._refused_lock:
            self.refused += 1
        if not self._closed and not self._told_gone and not self._process.is_alive():
            self._told_gone = True
            log.error("%s has stopped; the station goes on inspecting without it", self.name)
        return False

    def waiting(self) -> int:
        """Items handed over and not taken by the child yet."""
        try:
            return self._queue.qsize()
        except NotImplementedError:  # macOS has no sem_getvalue
            return 0

    def counters(self) -> list[int]:
        return list(self._counters)

    def close(self, timeout_s: float = 15.0) -> None:
        """Let the child take what is queued and stop; killed after `timeout_s`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._process.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout_s)
            except queue.Full:
                pass
            self._process.join(timeout_s)
        if self._process.is_alive():
            log.warning("%s did not stop within %.0f s: killed", self.name, timeout_s)
            self._kill()
        self._queue.cancel_join_thread()  # a dead child cannot drain the queue: do not wait on it
        self._queue.close()
        self._station_end.close()

    def _kill(self) -> None:
        self._process.kill()
        self._process.join(5.0)

    def _answer_loop(self) -> None:
        """Answer the child's questions (on this thread: the pipe read waits without the lock)."""
        while True:
            try:
                number, kind, args = self._station_end.recv()
            except (EOFError, OSError):  # the child ended, or close()
                return
            try:
                reply = (number, True, self._answer(kind, args))
            except Exception as error:  # a question the station cannot answer now: the child says so
                log.exception("%s asked %s and the station failed to answer", self.name, kind)
                reply = (number, False, f"{type(error).__name__}: {error}")
            try:
                self._station_end.send(reply)
            except (BrokenPipeError, OSError):
                return


class SidecarChild:
    """The child's side, handed to its target: the items, questions to the station, counters."""

    def __init__(self, items, station, counters, ready) -> None:
        self._items, self._station, self._counters, self._ready = items, station, counters, ready
        self._asking = threading.Lock()
        self._asked = 0

    def ready(self, info: Any) -> None:
        self._ready.send((True, info))
        self._ready.close()

    def failed(self, message: str) -> None:
        self._ready.send((False, message))
        self._ready.close()

    def items(self) -> Iterator[Any]:
        """The station's items in order, until it closes the child or dies."""
        parent = multiprocessing.parent_process()
        while True:
            try:
                item = self._items.get(timeout=0.5)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    log.warning("the station is gone: %s stops", multiprocessing.current_process().name)
                    return
                continue
            if item is _STOP:
                return
            yield item

    def ask(self, kind: str, *args, timeout_s: float = 2.0) -> Any:
        """Ask the station (thread safe); raises TimeoutError or RuntimeError with its answer."""
        with self._asking:
            self._asked += 1
            number = self._asked
            self._station.send((number, kind, args))
            while self._station.poll(timeout_s):
                got, ok, value = self._station.recv()
                if got != number:
                    continue  # the late answer to a question that timed out
                if not ok:
                    raise RuntimeError(value)
                return value
            raise TimeoutError(f"the station did not answer {kind!r} within {timeout_s:.0f} s")

    def set_counters(self, values: list[int]) -> None:
        for index, value in enumerate(values):
            self._counters[index] = int(value)


def lower_priority(priority: int | str) -> None:
    """Lower this process's CPU priority: a nice value (0-19), or "idle" for Linux's
    SCHED_IDLE class (a core only when no ordinary task wants it; very little on a saturated
    box, where the helper's bounded queue then fills and refuses, counted). Which is better
    depends on the box: on the 2-vCPU virtual machine this project is measured on, the OPC UA
    server in the idle class cost the verdicts more than at nice 10
    (benchmarks/results/opcua_cost/priority/HOW.md), so nice 10 is the default. Where the
    platform refuses, the helper runs at normal priority (logged)."""
    try:
        if priority == "idle":
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        elif priority:
            os.nice(int(priority))
    except (AttributeError, OSError) as error:  # not Linux, or refused
        log.warning("could not lower this helper's CPU priority to %s: %s", priority, error)


def _child_main(parts: tuple, priority: int | str, target: Callable, args: tuple) -> None:
    # The station decides when its helpers stop: a Ctrl-C or a service stop reaches the
    # whole process group, and the station then closes this process after its last items.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lower_priority(priority)
    target(SidecarChild(*parts), *args)
