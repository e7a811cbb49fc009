"""A station's health and stats against a real Mosquitto: /metrics and /health over HTTP
while it runs, and the periodic stats topic with the pipeline's counters."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.stand_ins.subscriber import Subscriber
from edge.app import build_station
from edge.health.metrics import HealthServer, Metrics, watch_sink_stats
from edge.sinks.mqtt.config import MqttSettings, OutboxSettings
from edge.sinks.mqtt.outbox.store import Outbox
from edge.sinks.mqtt.sink import MqttSink
from tests.integration.test_station_mqtt import make_station
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)

pytestmark = pytest.mark.mqtt


def scrape(port: int) -> tuple[dict, dict]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    return samples, health


def test_stats_topic_and_health_report_a_running_station(tmp_path, tiny_artifact, mosquitto):
    # given a station publishing stats every 0.2 s, on a 9-part line (3 NG), and a subscriber
    config, _ = make_station(tmp_path, tiny_artifact, mosquitto.port, 9)
    config = config.model_copy(update={"mqtt": config.mqtt.model_copy(update={"stats_interval_s": 0.2})})
    subscriber = Subscriber(mosquitto.port, "eiad/line-a/st-1/#", client_id="scada")
    assert subscriber.subscribed.wait(5)
    station = build_station(config)
    try:
        # when the line runs to its end and the outbox drains
        station.pipeline.run(threading.Event())
        assert station.sinks["mqtt"].flush(10)

        def final_stats(msgs):
            stats = [json.loads(m.payload) for m in msgs if m.topic.endswith("/stats")]
            return (
                stats and stats[-1]["pipeline"].get("results.OK", 0) + stats[-1]["pipeline"].get("results.NG", 0) == 9
            )

        # then the stats topic (QoS 0, from the stats thread) carries the pipeline counters
        assert subscriber.wait_for(final_stats, 5)
        last = json.loads(subscriber.snapshot("/stats")[-1].payload)
        time.sleep(0.1)  # the delete of the last PUBACKed rows is batched (20 ms)
        samples, health = scrape(station.health.port)
    finally:
        station.close()
        subscriber.close()
    assert last["pipeline"]["results.NG"] == 3 and last["pipeline"]["captured.line"] == 9
    assert last["connected"] is True and last["outbox"]["depth_rows"] == 0 and last["station"] == "st-1"
    # and /metrics has the sink's delivery figures with units in the names
    assert samples[("eiad_mqtt_connected", ())] == 1
    assert samples[("eiad_outbox_acked_total", ())] == 12  # 9 verdicts + 3 masks
    assert samples[("eiad_outbox_depth_rows", ())] == 0 and samples[("eiad_outbox_depth_bytes", ())] == 0
    p50 = samples[("eiad_publish_latency_seconds", (("quantile", "0.5"),))]
    p99 = samples[("eiad_publish_latency_seconds", (("quantile", "0.99"),))]
    assert 0 < p50 <= p99 <= samples[("eiad_publish_latency_seconds", (("quantile", "1"),))] < 5
    assert health["status"] == "ok" and health["problems"] == []
    assert health["components"]["mqtt"]["acked"] == 12 and health["counts"]["results"] == {"OK": 6, "NG": 3}


def test_a_refused_connection_shows_its_reason_code(tmp_path, mosquitto_factory):
    # given a broker that knows another password
    broker = mosquitto_factory(users={"st1": "right"})
    settings = MqttSettings(
        port=broker.port,
        line="l1",
        station="s1",
        username="st1",
        password_env="PW",
        allow_plaintext_credentials=True,
        stats_interval_s=0,
        close_timeout_s=0,
    )
    sink = MqttSink(settings, Outbox(OutboxSettings(path=tmp_path / "outbox.sqlite3")), environ={"PW": "wrong"})
    metrics = Metrics()
    watch_sink_stats(metrics, {"mqtt": sink})
    server = HealthServer(metrics, "127.0.0.1", 0)
    server.start()
    try:
        deadline = time.monotonic() + 10
        while sink.stats()["connect_refusals"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        # when the operator looks
        samples, health = scrape(server.port)
    finally:
        server.close()
        sink.close()
    # then the CONNACK code (0x86 bad user name or password / 0x87 not authorised) is there
    assert samples[("eiad_mqtt_last_refusal_code", ())] in (0x86, 0x87)
    assert samples[("eiad_mqtt_connect_refusals_total", ())] >= 1 and samples[("eiad_mqtt_connected", ())] == 0
    assert health["status"] == "degraded" and "wrong" not in json.dumps(health)
