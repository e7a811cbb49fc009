"""Broker faults while a station publishes: repeated outages with and without broker
persistence, and a broker that refuses the station's credentials. Asserted at the
subscriber: every inspection id at least once, none missing, order per station kept after
de-duplication; duplicates counted."""

from __future__ import annotations

import time

import pytest

from benchmarks.stand_ins.delivery import check_delivery, verdicts
from edge.sinks.mqtt.config import OutboxSettings
from edge.sinks.mqtt.outbox.store import Outbox
from edge.sinks.mqtt.sink import MqttSink
from tests.reliability.conftest import sink_settings
from tests.reliability.producer import Producer
from tests.reliability.tcp_proxy import TcpProxy

pytestmark = pytest.mark.mqtt


def received_verdicts(sub) -> list[dict]:
    return verdicts([m.payload for m in sub.snapshot("/verdict")])


def wait_all(sub, ids: list[str], timeout_s: float = 20.0) -> None:
    wanted = set(ids)
    sub.wait_for(
        lambda msgs: (
            wanted <= {v["inspection_id"] for v in verdicts([m.payload for m in msgs if m.topic.endswith("/verdict")])}
        ),
        timeout_s,
    )


def test_repeated_outages_of_a_persistent_broker_lose_no_verdict_for_two_stations(
    mosquitto_factory, subscriber_factory, tmp_path
):
    # given two stations publishing through a persistent broker, and a persistent-session PLC subscriber
    broker = mosquitto_factory(persistence=True)
    sub = subscriber_factory(broker.port, "eiad/l1/+/verdict")
    sinks = {
        st: MqttSink(sink_settings(broker.port, station=st), Outbox(OutboxSettings(path=tmp_path / f"{st}.db")))
        for st in ("st1", "st2")
    }
    producers = [Producer(sink, 240, interval_s=0.008, station=st).start() for st, sink in sinks.items()]
    # when the broker is stopped three times mid-run (down 0.4-0.8 s each)
    outages = 0
    for down_s in (0.4, 0.8, 0.6):
        time.sleep(0.35)
        broker.stop()
        time.sleep(down_s)
        broker.start()
        outages += 1
    for p in producers:
        p.join()
    for sink in sinks.values():
        assert sink.flush(20), sink.stats()
    ids = [i for p in producers for i in p.ids]
    wait_all(sub, ids)
    # then every verdict arrived, in order per station, none missing
    report = check_delivery(received_verdicts(sub), ids)
    assert report.ok, report
    assert report.delivered == 480
    # and the stations saw the outages and never blocked the camera loop for long
    for sink in sinks.values():
        stats = sink.stats()
        assert stats["disconnects"] >= 2 and stats["outbox_depth_rows"] == 0, stats
        assert stats.get("handle_failed", 0) == 0
    # A camera loop that waited for the broker would show one slow handle() per outage per station
    # (6 here); a stall of the shared test machine shows at most one per station, at the same moment
    # (measured: handle() takes <= 25 ms at the max otherwise, even with both cores busy elsewhere).
    slow = [s for p in producers for s in p.handle_s if s >= 0.25]
    assert len(slow) <= 2, f"{len(slow)} handle() calls took >= 0.25 s: {sorted(slow)}"
    for sink in sinks.values():
        sink.close()


def test_results_made_while_a_non_persistent_broker_is_down_are_all_delivered(
    mosquitto_factory, subscriber_factory, tmp_path
):
    # given a broker without persistence: a restart forgets every session and queued message,
    # so the station's outbox is the only copy of what is produced while it is down
    broker = mosquitto_factory(persistence=False)
    proxy = TcpProxy(broker.port).start()
    sub = subscriber_factory(broker.port, "eiad/l1/st1/verdict")
    sink = MqttSink(sink_settings(proxy.port), Outbox(OutboxSettings(path=tmp_path / "o.db")))
    first = Producer(sink, 30, interval_s=0.002).start()
    first.join()
    assert sink.flush(10)
    # when the broker restarts empty while 60 more parts are inspected
    proxy.refuse(True)  # the station's path stays down until the PLC has subscribed again
    proxy.cut()
    broker.stop()
    second = Producer(sink, 60, interval_s=0.002, first=31).start()
    second.join()
    assert sink.stats()["outbox_depth_rows"] >= 60  # every verdict (and mask) waits on disk
    sub.subscribed.clear()
    broker.start()
    assert sub.subscribed.wait(10)
    proxy.refuse(False)
    assert sink.flush(15), sink.stats()
    wait_all(sub, first.ids + second.ids)
    # then nothing is missing and the order holds
    report = check_delivery(received_verdicts(sub), first.ids + second.ids)
    assert report.ok, report
    sink.close()
    proxy.close()


def test_a_broker_refusing_the_credentials_loses_nothing_once_they_are_fixed(
    mosquitto_factory, subscriber_factory, tmp_path, caplog
):
    # given a broker that knows st1 with another password than the station has
    broker = mosquitto_factory(persistence=True, users={"st1": "right-pw", "plc": "plc-pw"})
    sub = subscriber_factory(broker.port, "eiad/l1/st1/verdict", username="plc", password="plc-pw", client_id="plc")
    wrong = dict(username="st1", password_env="PW", allow_plaintext_credentials=True)
    box_path = tmp_path / "o.db"
    sink = MqttSink(
        sink_settings(broker.port, **wrong), Outbox(OutboxSettings(path=box_path)), environ={"PW": "wrong-pw"}
    )
    # when 25 parts are inspected while the broker keeps refusing the station
    producer = Producer(sink, 25, interval_s=0.002).start()
    producer.join()
    deadline = time.monotonic() + 5
    while sink.stats()["connect_refusals"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = sink.stats()
    # then the refusal is reported with its CONNACK code, nothing is sent, everything is kept
    assert stats["connect_refusals"] >= 2 and stats["last_refusal_code"] in (0x86, 0x87), stats
    assert not stats["connected"] and stats["outbox_depth_rows"] >= 25
    assert received_verdicts(sub) == []
    assert "refused the connection" in caplog.text and "wrong-pw" not in caplog.text
    sink.close()
    # and after the password is fixed and the station restarted, every verdict arrives in order
    sink = MqttSink(
        sink_settings(broker.port, **wrong), Outbox(OutboxSettings(path=box_path)), environ={"PW": "right-pw"}
    )
    assert sink.flush(10), sink.stats()
    wait_all(sub, producer.ids)
    report = check_delivery(received_verdicts(sub), producer.ids)
    assert report.ok and report.duplicates == 0, report
    sink.close()
