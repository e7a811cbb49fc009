"""Hostile MQTT input: the one topic a station accepts (explain/request) against a real
Mosquitto while the camera loop runs. Each bad payload is rejected with its reason,
counted exactly, logged once per reason, answered, and has no other effect: no
explanation, and every frame still gets exactly one verdict.

The explainer's language model is a hand-written fake that records its calls (no request
here should reach it except the few the flood lets through); everything else is real:
the tiny ONNX artifact, the pipeline, the MQTT sink, the broker and the HTTP metrics."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from collections import Counter
from types import SimpleNamespace

import numpy as np
import paho.mqtt.client as mqtt
import pytest

import edge.explainer.worker as explainer_module
from benchmarks.stand_ins.artifact import grey_frame
from benchmarks.stand_ins.subscriber import Subscriber
from edge.app import build_station
from edge.config import load_station_config
from edge.explainer.worker import Explainer
from edge.sources.watchdog import SourceSet
from tests.support_edge.fakes import ListSource
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)

pytestmark = pytest.mark.mqtt

FRAMES = 120
STATION = """\
station_id: st1
line_id: l1
artifact: {artifact}
sources:
  - {{kind: synthetic, id: cam0, path: unused.mkv}}
metrics: {{enabled: true, host: 127.0.0.1, port: 0}}
mqtt: {{host: 127.0.0.1, port: {port}, stats_interval_s: 0}}
outbox: {{path: outbox.sqlite3}}
explainer: {{mode: on_request, remember_recent: 1000, mqtt_requests: {{rate_per_s: 0.5, burst: 3}}}}
"""


class RecordingRuntime:
    """The LLM's interface; records which prompts reached it."""

    def __init__(self) -> None:
        self.calls = 0

    def prompt_embeds(self, prefix, vision_features, suffix):
        self.calls += 1
        return np.zeros((1, 4), np.float32)

    def generate(self, embeds, max_new_tokens=48, on_text=None):
        return SimpleNamespace(text="a fake explanation", token_ids=[1, 2], tokens_per_s=100.0)


@pytest.fixture
def station(tmp_path, tiny_artifact, mosquitto_factory, monkeypatch):  # noqa: F811
    """A running station st1 (camera loop in a thread, ~40 frames/s for 3 s) with MQTT
    explanation requests on; yields (station, broker, runtime, verdicts subscriber, done)."""
    broker = mosquitto_factory(persistence=False)
    runtime = RecordingRuntime()
    monkeypatch.setattr(
        explainer_module,
        "build_explainer",
        lambda artifact, sinks, config, on_text=None: Explainer(runtime, sinks, config),
    )
    path = tmp_path / "station.yaml"
    path.write_text(STATION.format(artifact=tiny_artifact, port=broker.port))
    sources = SourceSet(check_interval_s=0.05)
    sources.add("cam0", lambda: ListSource("cam0", [grey_frame()] * FRAMES, delay_s=0.025))
    verdicts = Subscriber(broker.port, "eiad/l1/st1/#", client_id="plc")
    assert verdicts.subscribed.wait(5)
    built = build_station(load_station_config(path), sources=sources)
    stop, done = threading.Event(), threading.Event()
    summary = {}

    def run() -> None:
        summary["value"] = built.pipeline.run(stop)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield SimpleNamespace(station=built, broker=broker, runtime=runtime, sub=verdicts, done=done, summary=summary)
    stop.set()
    thread.join(10)
    built.close()
    verdicts.close()


def attacker(port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="attacker", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def responses(sub: Subscriber) -> list[dict]:
    return [json.loads(m.payload) for m in sub.snapshot("/explain/response")]


def first_verdict_id(sub: Subscriber) -> str:
    assert sub.wait_for(lambda msgs: any(m.topic.endswith("/verdict") for m in msgs), 10)
    return json.loads(sub.snapshot("/verdict")[0].payload)["inspection_id"]


def test_hostile_requests_are_rejected_counted_logged_once_and_change_nothing(station, caplog):
    # given a running station, a recent OK part's id, and an attacker on the plant network
    caplog.set_level(logging.WARNING, logger="edge.explainer.requests")
    known = first_verdict_id(station.sub)
    foreign = known.replace("st1-", "st9-", 1)
    unknown = "st1-cam0-1700000000000000000-999999"
    good = lambda i: json.dumps({"schema_version": 1, "inspection_id": i}).encode()  # noqa: E731
    catalogue = [
        (b'{"schema_version": 1, "inspection_id": ', "malformed_json"),
        (b"{" + b" " * (1024 * 1024) + b"}", "too_large"),
        (json.dumps({"schema_version": 1, "inspection_id": 12}).encode(), "wrong_type"),
        (json.dumps({"schema_version": 1, "inspection_id": known, "command": "shutdown"}).encode(), "unknown_field"),
        (json.dumps({"schema_version": 1}).encode(), "missing_field"),
        (json.dumps({"schema_version": "1", "inspection_id": known}).encode(), "unsupported_version"),
        (json.dumps([1, 2, 3]).encode(), "not_object"),
        (b'{"schema_version": 1, "inspection_id": NaN}', "malformed_json"),
        (os.urandom(64) + b"\xff\xfe", "not_utf8"),
        (good("../../etc/passwd"), "bad_inspection_id"),
        (good(unknown), "unknown_inspection"),
        (good(foreign), "other_station"),
    ]
    client = attacker(station.broker.port)
    try:
        # when each hostile payload is sent, one at a time, waiting for the station's answer
        for n, (payload, _) in enumerate(catalogue, start=1):
            client.publish("eiad/l1/st1/explain/request", payload, qos=1).wait_for_publish(5)
            assert station.sub.wait_for(lambda msgs, n=n: len(responses(station.sub)) >= n, 5), catalogue[n - 1][1]
        # then each was answered "rejected" with the expected reason, in order
        answers = responses(station.sub)
        assert [(a["status"], a["reason"]) for a in answers] == [("rejected", r) for _, r in catalogue]
        assert answers[-1]["inspection_id"] == foreign and answers[1]["inspection_id"] is None

        # when a flood of 1000 well-formed requests over 20 recent parts arrives within a second
        assert station.sub.wait_for(lambda msgs: len(station.sub.snapshot("/verdict")) >= 20, 10)
        ids = [json.loads(m.payload)["inspection_id"] for m in station.sub.snapshot("/verdict")[:20]]
        started = time.monotonic()
        for i in range(1000):
            client.publish("eiad/l1/st1/explain/request", good(ids[i % 20]), qos=1)
        flood_s = time.monotonic() - started
        expected_total = len(catalogue) + 1000
        assert station.sub.wait_for(lambda msgs: len(responses(station.sub)) >= expected_total, 15)
        assert station.done.wait(15)  # the camera loop ran to the end of its 120 frames meanwhile
    finally:
        client.loop_stop()
        client.disconnect()

    flood = responses(station.sub)[len(catalogue) :]
    accepted = [a["inspection_id"] for a in flood if a["status"] == "accepted"]
    # then only the token bucket's burst (3, +1 per 2 s) was accepted, each id at most once
    assert 3 <= len(accepted) <= 3 + int(flood_s * 0.5) + 1 and len(set(accepted)) == len(accepted)
    reasons = Counter(a["reason"] for a in flood if a["status"] == "rejected")
    assert set(reasons) <= {"duplicate", "rate_limited"} and sum(reasons.values()) == 1000 - len(accepted)
    # and every rejection is counted exactly, by reason, in the explainer's stats
    expected = Counter(r for _, r in catalogue) + reasons
    stats = station.station.sinks["explainer"].stats()
    assert stats["explain_requests_rejected"] == dict(expected)
    assert stats["explain_requests_accepted"] == len(accepted)
    # and the rejections reached /health and Prometheus
    port = station.station.health.port
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
    assert health["components"]["explainer"]["explain_requests_rejected"]["too_large"] == 1
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'eiad_explain_requests_rejected_total{reason="unknown_inspection"} 1.0' in metrics
    assert f"eiad_explain_requests_accepted_total {float(len(accepted))}" in metrics
    # and each reason was logged once (log_every_s: 60), never once per request
    logged = Counter(
        r.getMessage().split("(")[1].split(")")[0]
        for r in caplog.records
        if "explanation request rejected" in r.getMessage()
    )
    assert logged == Counter({reason: 1 for reason in expected})
    # and nothing else happened: only the accepted ids were explained, and the loop gave
    # every one of its 120 frames exactly one verdict, numbered 1..120
    assert station.sub.wait_for(
        lambda msgs: len(msgs) and len(station.sub.snapshot("/explanation")) >= len(accepted), 10
    )
    time.sleep(0.3)
    explained = [json.loads(m.payload)["inspection_id"] for m in station.sub.snapshot("/explanation")]
    assert sorted(explained) == sorted(accepted) and station.runtime.calls == len(accepted)
    assert station.sub.wait_for(lambda msgs: len(station.sub.snapshot("/verdict")) >= FRAMES, 10)
    verdicts = [json.loads(m.payload) for m in station.sub.snapshot("/verdict")]
    assert sorted(v["sequence"] for v in verdicts) == list(range(1, FRAMES + 1))
    assert len({v["inspection_id"] for v in verdicts}) == FRAMES
    assert station.summary["value"].frames == FRAMES


def test_the_subscription_is_renewed_after_the_broker_restarts(station):
    # given a station that accepts requests, and a broker that restarts (forgetting sessions)
    known = first_verdict_id(station.sub)
    station.broker.restart()
    mqtt_sink = station.station.sinks["mqtt"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and mqtt_sink.stats()["connects"] < 2:
        time.sleep(0.05)
    assert mqtt_sink.stats()["connects"] >= 2
    time.sleep(0.3)  # the station's SUBSCRIBE follows its CONNACK
    # when a request arrives on the new connection
    client = attacker(station.broker.port)
    try:
        client.publish(
            "eiad/l1/st1/explain/request",
            json.dumps({"schema_version": 1, "inspection_id": known, "requested_by": "hmi-2"}).encode(),
            qos=1,
        ).wait_for_publish(5)
        # then it is accepted and explained, with who asked in the explanation's meta
        assert station.sub.wait_for(lambda msgs: any(m.topic.endswith("/explanation") for m in msgs), 10)
    finally:
        client.loop_stop()
        client.disconnect()
    explanation = json.loads(station.sub.snapshot("/explanation")[0].payload)
    assert explanation["inspection_id"] == known and explanation["meta"]["requested_by"] == "hmi-2"
    assert station.station.sinks["explainer"].stats()["explain_requests_accepted"] == 1
