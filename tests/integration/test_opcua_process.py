"""The OPC UA server in its own process, owned by the station: PLC clients that vanish,
a station that restarts under a subscribed PLC, and a server process that dies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading

import pytest
from asyncua import ua

from benchmarks.stand_ins.subscriber import Subscriber
from edge.app import build_station
from tests.integration.test_opcua_server import PASSWORD, opcua_station_config
from tests.support.processes import running
from tests.support.verdicts import verdicts_by_frame
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)
from tests.support_hmi.page import wait_for
from tests.support_opcua.plc import EventLog, connected, wait_until

pytestmark = pytest.mark.mqtt


async def _subscribed(client, idx, log: EventLog):
    subscription = await client.create_subscription(10, log)
    event_type = await client.nodes.base_event_type.get_child(f"{idx}:ResultReadyEventType")
    await subscription.subscribe_events(client.nodes.server, event_type)
    return subscription


def test_the_server_survives_a_plc_vanishing_mid_subscription(tmp_path, tiny_artifact, mosquitto):
    # given a station with OPC UA, and a PLC that subscribed and then vanished without a word
    config, truths, key, cert = opcua_station_config(tmp_path, tiny_artifact, mosquitto.port)
    station = build_station(config)
    server_cert = tmp_path / "pki" / "own" / "cert.der"
    args = [station.opcua.endpoint, PASSWORD, str(key), str(cert), str(server_cert)]
    vanishing = subprocess.Popen(
        [sys.executable, "-m", "tests.support_opcua.vanishing_plc", *args], stdout=subprocess.PIPE, text=True
    )
    log = EventLog()
    try:
        assert vanishing.stdout.readline().strip() == "subscribed"
        vanishing.send_signal(signal.SIGKILL)
        vanishing.wait(10)

        async def scenario():
            async with connected(station.opcua.endpoint, PASSWORD, key, cert, server_cert) as (client, idx):
                await _subscribed(client, idx, log)
                # when the line runs with the dead PLC's subscription still on the server
                await asyncio.to_thread(station.pipeline.run, threading.Event())
                await wait_until(lambda: len(log.events) == 9)

        asyncio.run(scenario())
        stats = station.opcua.stats()
    finally:
        vanishing.kill()
        vanishing.stdout.close()
        station.close()
    # then the other PLC got every part, and the server published them all without a failure
    assert [e["Verdict"] for _, e in sorted(log.events, key=lambda e: e[1]["FrameId"])] == [t["label"] for t in truths]
    assert stats["published"] == 9 and stats["failed"] == 0 and stats["dropped"] == 0 and stats["running"]


def test_after_a_station_restart_the_plc_reconnects_and_the_results_continue(tmp_path, tiny_artifact, mosquitto):
    # given a station with OPC UA and a subscribed PLC that saw the first run's 9 parts
    config, _, key, cert = opcua_station_config(tmp_path, tiny_artifact, mosquitto.port)
    server_cert = tmp_path / "pki" / "own" / "cert.der"
    first, second = EventLog(), EventLog()
    station = build_station(config)
    thumbprint = station.opcua.certificate_thumbprint

    async def run_line(log: EventLog, lost_connection: list):
        async with connected(station.opcua.endpoint, PASSWORD, key, cert, server_cert) as (client, idx):
            await _subscribed(client, idx, log)
            await asyncio.to_thread(station.pipeline.run, threading.Event())
            await wait_until(lambda: len(log.events) == 9)
            if lost_connection is not None:  # the station stops under the connected PLC
                await asyncio.to_thread(station.close)
                try:
                    await client.get_node(ua.NodeId("VisionSystem", idx)).read_browse_name()
                except Exception:
                    lost_connection.append(True)

    lost: list = []
    try:
        asyncio.run(run_line(first, lost))
    except Exception:  # leaving the session of a server that is gone may fail too
        pass
    finally:
        station.close()
    assert lost == [True]
    # when the station starts again (same config, same certificate) and the PLC reconnects
    station = build_station(config)
    try:
        assert station.opcua.certificate_thumbprint == thumbprint
        asyncio.run(run_line(second, None))
    finally:
        station.close()
    # then the PLC gets the new run's parts, numbered on from the first run's
    assert sorted(e["Sequence"] for _, e in first.events) == list(range(1, 10))
    assert sorted(e["Sequence"] for _, e in second.events) == list(range(10, 19))


def test_an_opcua_process_that_dies_costs_the_line_nothing(tmp_path, tiny_artifact, mosquitto):
    config, truths, _, _ = opcua_station_config(tmp_path, tiny_artifact, mosquitto.port)
    station = build_station(config)
    subscriber = Subscriber(mosquitto.port, "eiad/line-a/st-1/verdict", client_id="plc")
    assert subscriber.subscribed.wait(5)
    try:
        pid = station.opcua.pid
        assert pid != os.getpid() and running(pid)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: station.opcua.stats()["running"] is False)
        summary = station.pipeline.run(threading.Event())
        stats = station.opcua.stats()
    finally:
        station.close()
    assert verdicts_by_frame(subscriber, 9) == [t["label"] for t in truths]
    assert summary.frames == 9
    assert stats["dropped"] == 9 and stats["running"] is False
