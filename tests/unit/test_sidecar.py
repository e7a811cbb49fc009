"""The station's helper processes (edge/sidecar.py): handing items over never waits, the
child can ask the station, a child that cannot start says why, a stuck one is stopped."""

from __future__ import annotations

import os
import time

import pytest

from edge.sidecar import Sidecar
from tests.support import sidecar_children
from tests.support.processes import running


def _answer(kind: str, args: tuple):
    if kind == "double":
        return 2 * args[0]
    raise ValueError(kind)


def test_items_arrive_in_order_and_the_child_can_ask_the_station():
    sidecar = Sidecar("echo", sidecar_children.echo, (), 16, 2, _answer)
    assert sidecar.start() == "echo"
    try:
        for n in range(1, 11):
            while not sidecar.offer(n):  # a full queue refuses; the test waits, a station would not
                time.sleep(0.01)
        deadline = time.monotonic() + 10
        while sidecar.counters()[0] < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sidecar.counters() == [10, 2 * sum(range(1, 11))]
    finally:
        sidecar.close()
    assert not sidecar.alive


def test_a_child_that_never_reads_costs_the_station_no_wait_and_is_killed_at_close():
    sidecar = Sidecar("stuck", sidecar_children.stuck, (), 8, 1, _answer)
    sidecar.start()
    pid = sidecar.pid
    started = time.perf_counter()
    taken = sum(sidecar.offer({"part": n, "frame": bytes(150_000)}) for n in range(500))
    took = time.perf_counter() - started
    assert took < 1.0, f"offer() waited: {took:.2f} s for 500 items"
    assert taken == 8 and sidecar.refused == 492  # the queue's bound; the rest refused and counted
    started = time.perf_counter()
    sidecar.close(timeout_s=1.0)
    assert time.perf_counter() - started < 5 and not running(pid)
    assert sidecar.offer("late") is False  # closed: refused, not raised


def test_a_child_that_cannot_start_says_why():
    sidecar = Sidecar("refuses", sidecar_children.refuses, (), 4, 1, _answer)
    with pytest.raises(RuntimeError, match="set hmi.port to a free one"):
        sidecar.start()


@pytest.mark.parametrize("priority", ["idle", 7])
def test_the_child_runs_at_the_lower_priority_it_was_given(priority):
    """The station's helpers yield the CPU to the inspection loop: in Linux's idle class
    (SCHED_IDLE) or at a nice value above the station's."""
    own_nice = os.getpriority(os.PRIO_PROCESS, 0)
    sidecar = Sidecar("echo", sidecar_children.echo, (), 4, 2, _answer, priority)
    sidecar.start()
    try:
        if priority == "idle":
            assert os.sched_getscheduler(sidecar.pid) == os.SCHED_IDLE
        else:
            assert os.sched_getscheduler(sidecar.pid) == os.SCHED_OTHER
            assert os.getpriority(os.PRIO_PROCESS, sidecar.pid) == min(own_nice + priority, 19)
    finally:
        sidecar.close()
