"""Feeds a sink with real InspectionResults at a steady pace from its own thread, the way
the camera loop does, while a test injects faults."""

from __future__ import annotations

import threading
import time

from benchmarks.stand_ins.results import make_result


class Producer:
    """Calls `sink.handle` for sequences first..first+count-1, one every `interval_s`."""

    def __init__(self, sink, count: int, interval_s: float = 0.005, station: str = "st1", first: int = 1) -> None:
        self.sink = sink
        self.ids = [f"{station}-{seq:06d}" for seq in range(first, first + count)]
        self._seqs = range(first, first + count)
        self._interval_s = interval_s
        self._station = station
        self.handle_s: list[float] = []  # how long each handle() took: the camera loop's cost
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Producer:
        self._thread.start()
        return self

    def _run(self) -> None:
        for seq in self._seqs:
            # Every third part NG: masks ride along and share the outbox with verdicts.
            result = make_result(seq, "NG" if seq % 3 == 0 else "OK", shape=(32, 48), station=self._station)
            began = time.perf_counter()
            self.sink.handle(result)
            self.handle_s.append(time.perf_counter() - began)
            time.sleep(self._interval_s)

    def join(self, timeout_s: float = 30.0) -> None:
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise AssertionError("the producer did not finish: handle() blocked")

    @property
    def done(self) -> int:
        return len(self.handle_s)
