"""PLC-triggered sources: a frame only when asked, the answer names that frame."""

from __future__ import annotations

import threading
import time

import pytest

from benchmarks.stand_ins.artifact import grey_frame
from edge.sources.trigger import NotTriggerable, TriggerError, TriggerGate
from edge.sources.watchdog import SourceSet
from tests.support_edge.fakes import ListSource


def _triggered(images: int) -> SourceSet:
    sources = SourceSet(check_interval_s=0.05)
    sources.add("cam", lambda: ListSource("cam", [grey_frame()] * images), plc_trigger=True, stall_timeout_s=0.2)
    sources.add("free", lambda: ListSource("free", [grey_frame()] * 2))
    return sources


def test_a_triggered_source_reads_only_when_asked_and_answers_with_the_frame():
    sources = _triggered(images=2)
    sources.start()
    try:
        time.sleep(0.5)  # longer than the stall timeout: waiting for the PLC is not a stall
        assert sources.queues.depth("cam") == 0 and sources.workers[0].restarts == 0
        assert sources.trigger("cam", timeout_s=2.0)[0] == 0
        assert sources.trigger("cam", timeout_s=2.0)[0] == 1
        batch = sources.queues.take_batch(8, 0.0, timeout_s=1.0)
        assert [f.frame_id for f in batch if f.source_id == "cam"] == [0, 1]
        # the source has no third frame: the request fails instead of waiting for ever
        with pytest.raises(TriggerError, match="the source ended"):
            sources.trigger("cam", timeout_s=2.0)
        with pytest.raises(NotTriggerable, match="not PLC-triggered"):
            sources.trigger("free")
        with pytest.raises(NotTriggerable, match="no source named"):
            sources.trigger("nope")
    finally:
        sources.stop()


def test_a_request_nobody_serves_times_out_and_too_many_are_refused():
    gate = TriggerGate("cam", max_pending=1)
    with pytest.raises(TriggerError, match="no frame within 0.1 s"):
        gate.request(timeout_s=0.1)  # no reader: withdrawn after its timeout
    waiting = threading.Thread(target=lambda: pytest.raises(TriggerError, gate.request, 1.0))
    waiting.start()
    time.sleep(0.1)
    with pytest.raises(TriggerError, match="1 triggers already waiting"):
        gate.request(timeout_s=0.1)
    gate.fail_all("the station is stopping")
    waiting.join(2.0)
    assert not waiting.is_alive()
