"""The operator page runs in a process of its own, owned by the station: the station's
verdicts never depend on it, and it never outlives the station."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from benchmarks.stand_ins.subscriber import Subscriber
from edge.app import build_station
from tests.integration.test_station_mqtt import make_station
from tests.support.processes import running
from tests.support.verdicts import verdicts_by_frame
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)
from tests.support_hmi.page import Client, settings, wait_for

pytestmark = pytest.mark.mqtt


def _station_with_page(tmp_path, artifact, broker_port: int, parts: int, **page):
    config, truths = make_station(tmp_path, artifact, broker_port, parts)
    return build_station(config.model_copy(update={"hmi": settings(tmp_path, **page)})), truths


def test_the_page_is_another_process_that_asks_the_station_for_its_health(tmp_path, tiny_artifact, mosquitto):
    station, _ = _station_with_page(tmp_path, tiny_artifact, mosquitto.port, 6)
    try:
        pid = station.hmi.pid
        assert pid is not None and pid != os.getpid() and running(pid)
        station.pipeline.run(threading.Event())
        wait_for(lambda: station.hmi.feed.stats()["written"] == 6)
        client = Client(station.hmi.url)
        client.login("vic")
        _, health, _ = client.request("GET", "/api/health")
        # the station's own counters, asked for when the browser asked: not a stale copy
        assert health["counts"]["results"] == {"OK": 4, "NG": 2}
        assert health["components"]["hmi"]["running"] is True
    finally:
        station.close()
    # closing the station stops the page's process, after it stored every part
    wait_for(lambda: not running(pid))
    assert not running(pid)


def test_a_page_process_that_dies_costs_the_line_nothing(tmp_path, tiny_artifact, mosquitto):
    # given a station with its page, and a PLC-like subscriber
    station, truths = _station_with_page(tmp_path, tiny_artifact, mosquitto.port, 12)
    subscriber = Subscriber(mosquitto.port, "eiad/line-a/st-1/verdict", client_id="plc")
    assert subscriber.subscribed.wait(5)
    try:
        # when the page's process is killed before the line starts
        os.kill(station.hmi.pid, signal.SIGKILL)
        wait_for(lambda: station.hmi.feed.stats()["running"] is False)
        started = time.perf_counter()
        summary = station.pipeline.run(threading.Event())
        took = time.perf_counter() - started
        stats = station.hmi.feed.stats()
        problems = station.metrics.health()["problems"]
    finally:
        station.close()
    # then every part is still inspected and published, in order, and the page's loss is counted
    assert verdicts_by_frame(subscriber, 12) == [t["label"] for t in truths]
    assert summary.frames == 12 and took < 30
    assert stats["dropped"] == 12 and stats["running"] is False
    assert any(p.startswith("hmi: its process has stopped") for p in problems), problems


def test_a_page_that_cannot_listen_stops_the_station_start_with_a_clear_message(tmp_path, tiny_artifact, mosquitto):
    from eiad.errors import ConfigError

    first, _ = _station_with_page(tmp_path / "a", tiny_artifact, mosquitto.port, 2)
    try:
        taken = int(first.hmi.url.rsplit(":", 1)[1].rstrip("/"))
        with pytest.raises(ConfigError, match="set hmi.port to a free one"):
            _station_with_page(tmp_path / "b", tiny_artifact, mosquitto.port, 2, port=taken)
    finally:
        first.close()


_STATION_THAT_DIES = """
import sys, time
from pathlib import Path
from edge.hmi.process import start_page_process
from tests.support_hmi.page import settings
page = start_page_process(settings(Path(sys.argv[1])), "line1", lambda: {"status": "ok"}, {"line": "line1"})
print(page.pid, flush=True)
time.sleep(60)
"""


def test_the_page_does_not_outlive_a_station_that_is_killed(tmp_path):
    import subprocess
    import sys

    station = subprocess.Popen(
        [sys.executable, "-c", _STATION_THAT_DIES, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        page_pid = int(station.stdout.readline())
        assert running(page_pid)
        station.kill()  # SIGKILL: the station cannot close its page
        station.wait(10)
        wait_for(lambda: not running(page_pid), timeout_s=5)
    finally:
        station.kill()
        station.stdout.close()
