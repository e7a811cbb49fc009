"""Bounded per-source frame queues with named policies, read as micro-batches.

Two policies:

- `block` (triggered cameras): never drops. `put` waits while the queue is full; each
  wait is counted as `blocked` and raises an alarm in the log, because a triggered line
  camera that outruns inference means parts are piling up.
- `latest` (free-running streams): keeps the newest frames. A `put` into a full queue
  drops the oldest frame (counted as `queue_full`); at dequeue, frames older than the
  staleness budget are dropped (counted as `stale`).

A `block` frame still waiting for room when capture stops is counted as `shutdown`.

All queues share one condition variable so the inference loop can wait for "any frame
from any camera" and gather a micro-batch across cameras.

Thread safety: every method may be called from any thread; one lock guards all state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from edge.frames import Frame

log = logging.getLogger(__name__)

Policy = Literal["block", "latest"]
ALARM_EVERY_S = 10.0  # at most one full-queue warning per source this often (all are counted)
DropHook = Callable[[str, str, int], None]  # (source_id, reason, count)


@dataclass
class _Lane:
    policy: Policy
    capacity: int
    staleness_ns: int | None
    frames: deque


class SourceQueues:
    """One bounded lane per source; `take_batch` round-robins across lanes."""

    def __init__(self, on_drop: DropHook | None = None, on_block: Callable[[str], None] | None = None) -> None:
        self._cond = threading.Condition()
        self._lanes: dict[str, _Lane] = {}
        self._order: list[str] = []
        self._next = 0
        self._on_drop = on_drop or (lambda source, reason, count: None)
        self._on_block = on_block or (lambda source: None)
        self.drops: dict[tuple[str, str], int] = {}
        self.blocked: dict[str, int] = {}
        self._last_alarm: dict[str, float] = {}

    def add_source(
        self, source_id: str, policy: Policy, capacity: int, staleness_budget_ms: float | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        staleness_ns = None if staleness_budget_ms is None else int(staleness_budget_ms * 1e6)
        with self._cond:
            self._lanes[source_id] = _Lane(policy, capacity, staleness_ns, deque())
            self._order.append(source_id)

    def put(self, frame: Frame, stop: threading.Event, wait_step_s: float = 0.05) -> bool:
        """Queue one frame; False only if `stop` was set while a `block` lane was full."""
        with self._cond:
            lane = self._lanes[frame.source_id]
            if lane.policy == "latest":
                while len(lane.frames) >= lane.capacity:
                    lane.frames.popleft()
                    self._count_drop(frame.source_id, "queue_full")
            elif len(lane.frames) >= lane.capacity:
                self.blocked[frame.source_id] = self.blocked.get(frame.source_id, 0) + 1
                self._on_block(frame.source_id)
                now = time.monotonic()
                if now - self._last_alarm.get(frame.source_id, -1e9) >= ALARM_EVERY_S:  # an alarm, not a flood
                    self._last_alarm[frame.source_id] = now
                    log.warning(
                        "queue of triggered source %s is full (%d): capture waits for inference (%d waits so far)",
                        frame.source_id,
                        lane.capacity,
                        self.blocked[frame.source_id],
                    )
                while len(lane.frames) >= lane.capacity:
                    if stop.is_set():
                        self._count_drop(frame.source_id, "shutdown")  # capture stopped while full
                        return False
                    self._cond.wait(wait_step_s)
            lane.frames.append(frame.stamped("queued", time.monotonic_ns()))
            self._cond.notify_all()
            return True

    def take_batch(self, max_frames: int, max_wait_s: float, timeout_s: float) -> list[Frame]:
        """Wait up to `timeout_s` for a first frame, then up to `max_wait_s` more to fill a batch.

        Frames come round-robin across sources so one fast camera cannot starve another.
        Returns [] when nothing arrived in time.
        """
        deadline = time.monotonic() + timeout_s
        batch: list[Frame] = []
        with self._cond:
            while not batch:
                batch.extend(self._pop_round_robin(max_frames))
                remaining = deadline - time.monotonic()
                if batch or remaining <= 0:
                    break
                self._cond.wait(remaining)
            fill_deadline = time.monotonic() + max_wait_s
            while batch and len(batch) < max_frames:
                batch.extend(self._pop_round_robin(max_frames - len(batch)))
                remaining = fill_deadline - time.monotonic()
                if len(batch) >= max_frames or remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._cond.notify_all()  # wake producers waiting on a full `block` lane
        return batch

    def depth(self, source_id: str) -> int:
        with self._cond:
            return len(self._lanes[source_id].frames)

    def total_depth(self) -> int:
        with self._cond:
            return sum(len(lane.frames) for lane in self._lanes.values())

    def _pop_round_robin(self, limit: int) -> list[Frame]:
        taken: list[Frame] = []
        now = time.monotonic_ns()
        progress = True
        while len(taken) < limit and progress and self._order:
            progress = False
            for _ in range(len(self._order)):
                source_id = self._order[self._next % len(self._order)]
                self._next += 1
                frame = self._pop_fresh(source_id, now)
                if frame is not None:
                    taken.append(frame)
                    progress = True
                    if len(taken) >= limit:
                        break
        return taken

    def _pop_fresh(self, source_id: str, now_ns: int) -> Frame | None:
        lane = self._lanes[source_id]
        while lane.frames:
            frame = lane.frames.popleft()
            captured = frame.stamps_ns.get("captured", now_ns)
            if lane.staleness_ns is not None and now_ns - captured > lane.staleness_ns:
                self._count_drop(source_id, "stale")
                continue
            return frame
        return None

    def _count_drop(self, source_id: str, reason: str) -> None:
        key = (source_id, reason)
        self.drops[key] = self.drops.get(key, 0) + 1
        self._on_drop(source_id, reason, 1)
