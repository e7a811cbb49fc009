"""The station's OPC UA server against a real asyncua client: secured endpoints, users,
the trust list, ResultReady events, the latest-result variables and the result methods."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time

import pytest
from asyncua import ua

from edge.access.passwords import hash_password
from edge.app import build_station
from edge.health.metrics import Metrics
from edge.opcua.server import OpcUaServer
from edge.opcua.settings import OpcUaSettings
from edge.sinks.mqtt.broker import free_port
from tests.integration.test_station_mqtt import make_station
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)
from tests.support_hmi.page import part
from tests.support_opcua.plc import EventLog, client_certificate, connected, make_client, wait_until

PASSWORD = "plc-password-1"
_HASH = hash_password(PASSWORD)
ABOUT = {"line": "line1", "station": "st1", "model_id": "tiny@test"}


def _server(tmp_path, **overrides) -> OpcUaServer:
    settings = OpcUaSettings.model_validate(
        {
            "host": "127.0.0.1",
            "port": free_port(),
            "users": {"plc": {"role": "viewer", "password_hash": _HASH}},
            "pki_dir": str(tmp_path / "pki"),
            **overrides,
        }
    )
    return OpcUaServer(settings, lambda p: p, ABOUT, ["cam0"]).start()


def _trusted_server(tmp_path, **overrides):
    server = _server(tmp_path, **overrides)
    key, cert = asyncio.run(client_certificate(tmp_path / "plc"))
    shutil.copy(cert, tmp_path / "pki" / "trusted" / "plc.der")  # the integrator trusts the PLC
    server.close()  # the trust list is read at start: restart to take it in
    return _server(tmp_path, **overrides), key, cert, tmp_path / "pki" / "own" / "cert.der"


@pytest.fixture
def station(tmp_path):
    server, key, cert, server_cert = _trusted_server(tmp_path)
    yield server, key, cert, server_cert
    server.close()


def test_a_plc_gets_each_result_as_an_event_and_in_the_camera_variables(station):
    server, key, cert, server_cert = station

    async def scenario():
        async with connected(server.endpoint, PASSWORD, key, cert, server_cert) as (client, idx):
            system = client.get_node(ua.NodeId("VisionSystem", idx))
            log = EventLog()
            subscription = await client.create_subscription(10, log)
            event_type = await client.nodes.base_event_type.get_child(f"{idx}:ResultReadyEventType")
            await subscription.subscribe_events(system, event_type)
            state = client.get_node(ua.NodeId("VisionSystem.VisionStateMachine.CurrentState", idx))
            assert (await state.read_value()).Text == "Preoperational"
            server.set_state("Operational")
            await wait_until(lambda: server.state == "Operational")
            ng, _ = part("NG", defect_class="crack")
            ok, _ = part("OK")
            server.handle(ng)
            server.handle(ok)
            await wait_until(lambda: len(log.events) == 2)
            first = log.events[0][1]
            assert first["ResultId"] == ng.inspection_id and first["Verdict"] == "NG"
            assert first["DefectClass"] == "crack" and first["ResultState"] == 2 and first["RegionCount"] == 1
            assert json.loads(first["ResultContent"])["Sequence"] == ng.sequence
            assert log.events[1][1]["ResultId"] == ok.inspection_id  # in the station's order
            verdict = client.get_node(ua.NodeId("VisionSystem.Cameras.cam0.Verdict", idx))
            result_id = client.get_node(ua.NodeId("VisionSystem.Cameras.cam0.ResultId", idx))
            assert await verdict.read_value() == "OK" and await result_id.read_value() == ok.inspection_id
            # a recent result by id, held by a handle until released
            management = client.get_node(ua.NodeId("VisionSystem.ResultManagement", idx))
            get = ua.NodeId("VisionSystem.ResultManagement.GetResultById", idx)
            release = ua.NodeId("VisionSystem.ResultManagement.ReleaseResultHandle", idx)
            content, handle, error = await management.call_method(
                get, ng.inspection_id, ua.Variant(0, ua.VariantType.Int32)
            )
            assert error == 0 and json.loads(content)["Score"] == pytest.approx(ng.score) and handle > 0
            assert await management.call_method(release, ua.Variant(handle, ua.VariantType.UInt32)) == 0
            assert await management.call_method(release, ua.Variant(handle, ua.VariantType.UInt32)) == 2
            _, _, error = await management.call_method(get, "st1-cam0-0-0", ua.Variant(0, ua.VariantType.Int32))
            assert error == 1  # never seen
            # variables are read-only for clients
            with pytest.raises(ua.UaStatusCodeError):
                await verdict.write_value("NG")

    asyncio.run(scenario())
    assert server.stats()["published"] == 2 and server.stats()["dropped"] == 0


def test_events_go_out_as_raised_whatever_the_publishing_cycle(tmp_path):
    # A 10 ms request is revised up to the floor (here a minute); the events must not wait for
    # the cycle: without the immediate push they would arrive a minute later, after this test.
    server, key, cert, server_cert = _trusted_server(tmp_path, min_publishing_interval_ms=60_000)

    async def scenario():
        async with connected(server.endpoint, PASSWORD, key, cert, server_cert) as (client, idx):
            log = EventLog()
            subscription = await client.create_subscription(10, log)
            event_type = await client.nodes.base_event_type.get_child(f"{idx}:ResultReadyEventType")
            await subscription.subscribe_events(client.nodes.server, event_type)
            granted = [s.data.RevisedPublishingInterval for s in _subscriptions(server)]
            assert granted == [60_000.0]
            sent = [part("NG" if i % 3 == 0 else "OK")[0] for i in range(6)]
            for n, result in enumerate(sent, 1):
                server.handle(result)
                await wait_until(lambda n=n: len(log.events) == n, timeout_s=20.0)
            assert [event["ResultId"] for _, event in log.events] == [r.inspection_id for r in sent]

    try:
        asyncio.run(scenario())
    finally:
        server.close()


def _subscriptions(server: OpcUaServer) -> list:
    """The server's asyncua subscriptions (internal: what edge/opcua/publishing.py relies on)."""
    return list(server._server.iserver.subscription_service.subscriptions.values())


def test_wrong_password_untrusted_client_and_the_none_policy_are_refused(station, tmp_path):
    server, key, cert, server_cert = station

    async def refused(client, setup) -> bool:
        try:
            await setup
            async with client:
                return False
        except Exception:
            return True

    async def scenario():
        assert await refused(*make_client(server.endpoint, "plc", "wrong-password", key, cert, server_cert))
        assert await refused(*make_client(server.endpoint, "intruder", PASSWORD, key, cert, server_cert))
        other_key, other_cert = await client_certificate(tmp_path / "stranger")
        assert await refused(*make_client(server.endpoint, "plc", PASSWORD, other_key, other_cert, server_cert))
        from asyncua import Client

        bare = Client(server.endpoint, timeout=5)
        bare.set_user("plc")
        bare.set_password(PASSWORD)
        try:
            await bare.connect()
            connected = True
            await bare.disconnect()
        except Exception:
            connected = False
        assert not connected, "the unsecured endpoint must not exist unless opcua.allow_none is set"
        # Sign only (no encryption) is offered too
        client, setup = make_client(server.endpoint, "plc", PASSWORD, key, cert, server_cert, mode="Sign")
        assert not await refused(client, setup)

    asyncio.run(scenario())


def test_the_hand_off_is_bounded_and_never_waits(tmp_path):
    server = _server(tmp_path, queue_size=10)
    try:
        started = time.perf_counter()
        for _ in range(2000):
            server.handle(part("NG")[0])
        took = time.perf_counter() - started
        assert took < 1.0, f"handle() waited: {took:.2f} s for 2000 results"
        asyncio.run(wait_until(lambda: server.stats()["queued"] == 0))
        stats = server.stats()
        assert stats["published"] + stats["dropped"] == 2000 and stats["dropped"] > 0
    finally:
        server.close()
    assert server.state == "Halted"


def test_settings_refuse_a_server_without_users():
    with pytest.raises(ValueError, match="opcua.users is empty"):
        OpcUaSettings.model_validate({"users": {}})


def _station_with_opcua(tmp_path, artifact, broker_port: int, source_update: dict | None = None):
    """A built station on a 9-part line with the OPC UA server on, and a PLC certificate it
    trusts: (station, ground truth, PLC key, PLC certificate)."""
    config, truths, key, cert = opcua_station_config(tmp_path, artifact, broker_port, source_update)
    return build_station(config), truths, key, cert


def opcua_station_config(tmp_path, artifact, broker_port: int, source_update: dict | None = None):
    """The config of a station on a 9-part line with the OPC UA server on (a fixed free
    port), and a PLC certificate it trusts: (config, ground truth, PLC key, PLC certificate)."""
    key, cert = asyncio.run(client_certificate(tmp_path / "plc"))
    (tmp_path / "pki" / "trusted").mkdir(parents=True)
    shutil.copy(cert, tmp_path / "pki" / "trusted" / "plc.der")
    config, truths = make_station(tmp_path, artifact, broker_port, 9)
    opcua = {
        "host": "127.0.0.1",
        "port": free_port(),
        "users": {"plc": {"role": "viewer", "password_hash": _HASH}},
        "pki_dir": str(tmp_path / "pki"),
    }
    sources = [s.model_copy(update=source_update or {}) for s in config.sources]
    config = config.model_copy(update={"opcua": OpcUaSettings.model_validate(opcua), "sources": sources})
    return config, truths, key, cert


@pytest.mark.mqtt
def test_a_station_with_opcua_raises_one_event_per_part_and_reports_its_state(tmp_path, tiny_artifact, mosquitto):
    # given a station with the OPC UA server on, on a 9-part line (3 NG), and a trusted PLC
    station, truths, key, cert = _station_with_opcua(tmp_path, tiny_artifact, mosquitto.port)
    log = EventLog()
    states = []

    async def scenario():
        async with connected(station.opcua.endpoint, PASSWORD, key, cert, tmp_path / "pki/own/cert.der") as (
            client,
            idx,
        ):
            state = client.get_node(ua.NodeId("VisionSystem.VisionStateMachine.CurrentState", idx))
            states.append((await state.read_value()).Text)
            subscription = await client.create_subscription(10, log)
            # on the Server object: the vision system is one of its notifiers
            await subscription.subscribe_events(
                client.nodes.server, await client.nodes.base_event_type.get_child(f"{idx}:ResultReadyEventType")
            )
            # when the line runs to its end
            await asyncio.to_thread(station.pipeline.run, threading.Event())
            await wait_until(lambda: len(log.events) == 9)
            states.append((await state.read_value()).Text)
            # the camera's variables hold its last part, and a recent part is there by id
            last = max((e for _, e in log.events), key=lambda e: e["Sequence"])
            camera = f"VisionSystem.Cameras.{last['CameraId']}"
            latest.update(
                {
                    name: await client.get_node(ua.NodeId(f"{camera}.{name}", idx)).read_value()
                    for name in ("ResultId", "Verdict", "Sequence")
                }
            )
            management = client.get_node(ua.NodeId("VisionSystem.ResultManagement", idx))
            get = ua.NodeId("VisionSystem.ResultManagement.GetResultById", idx)
            first = min((e for _, e in log.events), key=lambda e: e["Sequence"])
            content, _, error = await management.call_method(
                get, first["ResultId"], ua.Variant(0, ua.VariantType.Int32)
            )
            fetched.update(json.loads(content) if error == 0 else {"error": error})
            latest["expected"] = last
        # a wrong password is refused by the station's secured endpoint
        client, setup = make_client(station.opcua.endpoint, "plc", "wrong", key, cert, tmp_path / "pki/own/cert.der")
        await setup
        try:
            async with client:
                refused.append(False)
        except Exception:
            refused.append(True)

    latest, fetched, refused = {}, {}, []
    try:
        asyncio.run(scenario())
    finally:
        station.close()
    # then one event per part, in order, with the station's verdicts
    expected = latest.pop("expected")
    assert latest == {k: expected[k] for k in ("ResultId", "Verdict", "Sequence")}
    assert fetched["Sequence"] == 1 and fetched["FrameId"] == 0 and fetched["Verdict"] == truths[0]["label"]
    assert refused == [True]
    by_frame = {e["FrameId"]: e for _, e in log.events}
    assert [by_frame[i]["Verdict"] for i in range(9)] == [t["label"] for t in truths]
    assert [e["Sequence"] for _, e in log.events] == sorted(e["Sequence"] for _, e in log.events)
    assert states == ["Preoperational", "Operational"] and station.opcua.state == "Halted"
    assert station.metrics.health()["components"]["opcua"]["published"] == 9


def test_a_failed_camera_puts_the_vision_system_in_error_until_it_delivers_again(tmp_path):
    # given a server whose station inspects two cameras
    server = _server(tmp_path)
    try:
        server.handle(part("OK", source="cam0")[0])
        _wait(lambda: server.state == "Operational")
        # when cam1 fails (the watchdog restarts it), as the station's metrics report it
        metrics = Metrics()
        metrics.on_source_failure(server.source_failed)
        metrics.source_restarted("cam1", "error")
        # then the system is in Error, and results from the other camera do not clear it
        _wait(lambda: server.state == "Error")
        server.handle(part("OK", source="cam0")[0])
        _wait(lambda: server.stats()["published"] == 2)
        assert server.state == "Error"
        # and once cam1 delivers again, it is Operational
        server.handle(part("OK", source="cam1")[0])
        _wait(lambda: server.state == "Operational")
    finally:
        server.close()
    assert server.state == "Halted"


def _wait(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.mqtt
def test_a_plc_triggers_each_inspection_and_gets_its_result_id_first(tmp_path, tiny_artifact, mosquitto):
    # given a station whose camera reads only when the PLC asks, and a trusted PLC
    station, truths, key, cert = _station_with_opcua(
        tmp_path, tiny_artifact, mosquitto.port, source_update={"plc_trigger": True, "stall_timeout_s": 0.5}
    )
    stop, log, answers = threading.Event(), EventLog(), []
    loop_thread = threading.Thread(target=station.pipeline.run, args=(stop,))

    async def scenario():
        async with connected(station.opcua.endpoint, PASSWORD, key, cert, tmp_path / "pki/own/cert.der") as (
            client,
            idx,
        ):
            system = client.get_node(ua.NodeId("VisionSystem", idx))
            subscription = await client.create_subscription(10, log)
            await subscription.subscribe_events(
                system, await client.nodes.base_event_type.get_child(f"{idx}:ResultReadyEventType")
            )
            loop_thread.start()
            await asyncio.sleep(1.0)  # the camera waits for the PLC: no part, and no stall (timeout 0.5 s)
            assert log.events == []
            trigger = ua.NodeId("VisionSystem.TriggerInspection", idx)
            for _ in range(3):  # when the PLC triggers three inspections
                answers.append(await system.call_method(trigger, "line", ua.Variant(5000, ua.VariantType.Int32)))
            await wait_until(lambda: len(log.events) == 3)
            # an unknown camera is refused with error 1
            answers.append(await system.call_method(trigger, "nope", ua.Variant(1000, ua.VariantType.Int32)))
            # waiting for the PLC was never a stall; a real camera failure puts the system in Error
            assert station.metrics.health()["counts"].get("restarts", {}) == {}
            station.metrics.source_restarted("line", "error")  # as the watchdog reports it
            await wait_until(lambda: station.opcua.state == "Error")

    loop_thread_started = False
    try:
        asyncio.run(scenario())
        loop_thread_started = loop_thread.is_alive()
    finally:
        stop.set()
        if loop_thread.ident is not None:
            loop_thread.join(30)
        station.close()
    # then each call answered with the inspection id of the part its event then carried, in order
    assert loop_thread_started
    assert [error for _, error in answers] == [0, 0, 0, 1]
    assert [e["ResultId"] for _, e in log.events] == [result_id for result_id, _ in answers[:3]]
    assert [e["FrameId"] for _, e in log.events] == [0, 1, 2]
    assert [e["Verdict"] for _, e in log.events] == [t["label"] for t in truths[:3]]
