"""Timing loops: warm-up, `perf_counter_ns` per call, a minimum duration, a device sync.

    run = time_calls(lambda: runner.run(batch), warmup=10, min_duration_s=5.0, sync=cuda_sync())
    run.samples_ns        # one sample per call, device work included (sync after each call)
    run.throughput(items_per_call=8)

A GPU call returns before the work is done; without `sync` the figure is the launch
time, not the latency. `sync` runs inside the timed region for that reason.

Not thread-safe: time one thing at a time (and nothing else heavy on the machine).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimedRun:
    """Per-call latencies and the wall time of the measured phase (warm-up excluded)."""

    samples_ns: np.ndarray  # int64, one per call
    wall_s: float
    warmup: int

    @property
    def iterations(self) -> int:
        return int(self.samples_ns.size)

    @property
    def samples_ms(self) -> np.ndarray:
        return self.samples_ns.astype(np.float64) / 1e6

    def throughput(self, items_per_call: int = 1) -> float:
        """Items per second over the measured wall time (loop overhead included)."""
        return self.iterations * items_per_call / self.wall_s if self.wall_s > 0 else float("nan")


def time_calls(
    fn: Callable[[], object],
    *,
    warmup: int = 10,
    min_duration_s: float = 5.0,
    min_iterations: int = 30,
    max_iterations: int | None = None,
    sync: Callable[[], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> TimedRun:
    """Call `fn` `warmup` times untimed, then until both `min_duration_s` and
    `min_iterations` are reached (or `max_iterations`), timing each call with
    `perf_counter_ns` and calling `sync` inside the timed region."""
    if min_duration_s < 0 or warmup < 0 or min_iterations < 1:
        raise ValueError("warmup and min_duration_s must be >= 0, min_iterations >= 1")
    for _ in range(warmup):  # first calls allocate arenas, pick kernels, fill caches
        fn()
        if sync:
            sync()
    samples: list[int] = []
    clock = time.perf_counter_ns
    deadline_ns = clock() + int(min_duration_s * 1e9)
    started = clock()
    while True:
        t0 = clock()
        fn()
        if sync:
            sync()
        t1 = clock()
        samples.append(t1 - t0)
        if progress:
            progress(1)
        n = len(samples)
        if max_iterations is not None and n >= max_iterations:
            break
        if n >= min_iterations and t1 >= deadline_ns:
            break
    wall_s = (clock() - started) / 1e9
    return TimedRun(samples_ns=np.asarray(samples, dtype=np.int64), wall_s=wall_s, warmup=warmup)


def cuda_sync() -> Callable[[], None] | None:
    """`torch.cuda.synchronize` when torch with CUDA is importable, else None (CPU work is synchronous)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.synchronize
