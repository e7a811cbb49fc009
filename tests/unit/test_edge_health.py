"""Metrics and /health over real HTTP: a real pipeline run, a real MQTT sink and explainer."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.request
from types import SimpleNamespace

import numpy as np
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.stand_ins.frames import line_frames
from benchmarks.stand_ins.results import make_result
from edge.explainer.config import ExplainerConfig
from edge.explainer.feed import ExplainerFeed
from edge.explainer.worker import Explainer
from edge.health.metrics import HealthServer, Metrics, watch_sink_stats
from edge.pipeline import Pipeline
from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
from edge.sinks.log import LogSink
from edge.sinks.mqtt.config import MqttSettings, OutboxSettings
from edge.sinks.mqtt.outbox.store import Outbox
from edge.sinks.mqtt.sink import MqttSink
from edge.sources.watchdog import SourceSet
from tests.support.mosquitto import free_port
from tests.support_edge.fakes import CollectingSink, FailingSink, ListSource
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)


def test_metrics_and_health_endpoints_report_the_run(tiny_artifact):
    # given a run of 9 frames (3 NG) with one sink failing on every result
    metrics = Metrics()
    sources = SourceSet(events=metrics)
    images, _ = line_frames(9)
    sources.add("cam", lambda: ListSource("cam", images))
    Pipeline(
        "st", sources, OnnxRuntimeRunner(tiny_artifact), {"ok": CollectingSink(), "bad": FailingSink()}, metrics=metrics
    ).run(threading.Event())
    server = HealthServer(metrics, "127.0.0.1", 0)
    server.start()
    try:
        # when Prometheus scrapes and an operator asks for health
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=5).read())
    finally:
        server.close()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    # then the counts match the run
    assert samples[("eiad_edge_frames_captured_total", (("source", "cam"),))] == 9
    assert samples[("eiad_edge_results_total", (("verdict", "NG"),))] == 3
    assert samples[("eiad_edge_results_total", (("verdict", "OK"),))] == 6
    assert samples[("eiad_edge_sink_failures_total", (("sink", "bad"),))] == 9
    assert samples[("eiad_edge_stage_latency_seconds_count", (("stage", "total"),))] == 9
    assert samples[("eiad_edge_stage_latency_seconds_count", (("stage", "inference"),))] == 9
    assert ("eiad_edge_queue_depth", (("source", "cam"),)) in samples
    assert health["status"] == "ok" and health["counts"]["results"] == {"OK": 6, "NG": 3}
    assert health["counts"]["sink_failures"] == {"bad": 9} and health["last_result_age_s"] >= 0


def test_unknown_path_is_404():
    server = HealthServer(Metrics(), "127.0.0.1", 0)
    server.start()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/nope", timeout=5)
        raise AssertionError("expected 404")
    except urllib.error.HTTPError as error:
        assert error.code == 404
    finally:
        server.close()


class GatedRuntime:
    """A language-model runtime that waits for `gate` before each answer (hand-written fake)."""

    def __init__(self) -> None:
        self.gate, self.started = threading.Event(), threading.Event()

    def prompt_embeds(self, prefix, vision_features, suffix):
        return np.zeros((1, 4), np.float32)

    def generate(self, embeds, max_new_tokens=48, on_text=None):
        self.started.set()
        self.gate.wait(10)
        return SimpleNamespace(text="a bright spot", token_ids=[1, 2, 3], tokens_per_s=30.0)


def scrape(port: int) -> tuple[dict, dict]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    return samples, health


def test_mqtt_sink_and_explainer_stats_reach_health_and_prometheus(tmp_path):
    # given an MQTT sink whose broker is down (nothing listens on its port), holding 3
    # verdicts and 2 masks in its outbox, and an explainer busy on one part with a backlog of 1
    sink = MqttSink(
        MqttSettings(
            host="127.0.0.1",
            port=free_port(),
            line="l1",
            station="s1",
            stats_interval_s=0,
            close_timeout_s=0,
            reconnect_min_delay_s=5,
            reconnect_max_delay_s=5,
        ),
        Outbox(OutboxSettings(path=tmp_path / "outbox.sqlite3")),
    )
    for sequence, verdict in ((1, "NG"), (2, "OK"), (3, "NG")):
        sink.handle(make_result(sequence, verdict))
    runtime = GatedRuntime()
    explainer = Explainer(runtime, [], ExplainerConfig(mode="all", backlog_max=1)).start()
    feed = ExplainerFeed(explainer)
    tokens = np.zeros((16, 3), np.float32)  # the vision features an explanation starts from
    feed.handle(dataclasses.replace(make_result(1, "NG"), features=tokens))
    assert runtime.started.wait(5)
    feed.handle(dataclasses.replace(make_result(2, "NG"), features=tokens))
    feed.handle(dataclasses.replace(make_result(3, "NG"), features=tokens))  # backlog full: part 2 is dropped
    metrics = Metrics()
    watch_sink_stats(metrics, {"log": LogSink(), "mqtt": sink, "explainer": feed})
    server = HealthServer(metrics, "127.0.0.1", 0)
    server.start()
    try:
        # when Prometheus scrapes and an operator asks for health
        samples, health = scrape(server.port)
        runtime.gate.set()  # then the explainer catches up
        deadline = time.monotonic() + 5
        while explainer.stats().explained < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        after, _ = scrape(server.port)
    finally:
        server.close()
        feed.close()
        sink.close()
    # then the outbox depth, the connection and the explainer's backlog are there, with units
    assert samples[("eiad_outbox_depth_rows", ())] == 5
    assert samples[("eiad_outbox_depth_bytes", ())] == health["components"]["mqtt"]["outbox_depth_bytes"] > 0
    assert samples[("eiad_mqtt_connected", ())] == 0 and samples[("eiad_outbox_full_alarm", ())] == 0
    assert samples[("eiad_outbox_disk_full", ())] == 0 and samples[("eiad_outbox_acked_total", ())] == 0
    assert samples[("eiad_explainer_backlog_parts", ())] == 1 and samples[("eiad_explainer_dropped_total", ())] == 1
    assert samples[("eiad_explainer_produced_total", ())] == 0
    assert after[("eiad_explainer_produced_total", ())] == 2 and after[("eiad_explainer_backlog_parts", ())] == 0
    # the scripted "a crack" names no place: both explanations are counted inconsistent, on
    # /metrics and on the stats topic alike
    assert after[("eiad_explainer_inconsistent_total", ())] == 2 == metrics.pipeline_stats()["explainer.inconsistent"]
    # and /health says what is wrong, in words
    assert health["status"] == "degraded"
    assert "mqtt: not connected to the MQTT broker" in health["problems"]
    mqtt = health["components"]["mqtt"]
    assert mqtt["outbox_depth_rows"] == 5 and mqtt["connected"] is False and mqtt["last_refusal_code"] is None
    assert health["components"]["explainer"]["backlog"] == 1 and "log" not in health["components"]


def test_a_component_whose_stats_raise_is_reported_not_fatal():
    metrics = Metrics()

    def broken() -> dict:
        raise RuntimeError("database is locked")

    metrics.watch("mqtt", broken)
    health = metrics.health()
    assert health["status"] == "degraded"
    assert health["problems"] == ["mqtt: stats unavailable (database is locked)"]
    assert b"eiad_outbox_depth_rows" not in generate_latest(metrics.registry)


def test_pipeline_stats_are_flat_counters_for_the_stats_topic(tiny_artifact):
    metrics = Metrics()
    sources = SourceSet(events=metrics)
    images, _ = line_frames(6)
    sources.add("cam", lambda: ListSource("cam", images))
    Pipeline("st", sources, OnnxRuntimeRunner(tiny_artifact), {"ok": CollectingSink()}, metrics=metrics).run(
        threading.Event()
    )
    flat = metrics.pipeline_stats()
    assert flat["results.OK"] == 4 and flat["results.NG"] == 2 and flat["captured.cam"] == 6
    assert flat["uptime_s"] > 0 and flat["last_result_age_s"] >= 0
    assert all(isinstance(v, float) for v in flat.values())
