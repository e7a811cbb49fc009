"""Metrics and /health over real HTTP after a real pipeline run."""

from __future__ import annotations

import json
import threading
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from edge.health import HealthServer, Metrics
from edge.pipeline import Pipeline
from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
from edge.sources.watchdog import SourceSet
from tests.support_edge.fakes import CollectingSink, FailingSink, ListSource
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)
from tests.support_edge.media import line_frames


def test_metrics_and_health_endpoints_report_the_run(tiny_artifact):
    # given a run of 9 frames (3 NG) with one sink failing on every result
    metrics = Metrics()
    sources = SourceSet(events=metrics)
    images, _ = line_frames(9)
    sources.add("cam", lambda: ListSource("cam", images))
    Pipeline("st", sources, OnnxRuntimeRunner(tiny_artifact), {"ok": CollectingSink(), "bad": FailingSink()}, metrics=metrics).run(threading.Event())
    server = HealthServer(metrics, "127.0.0.1", 0)
    server.start()
    try:
        # when Prometheus scrapes and an operator asks for health
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=5).read())
    finally:
        server.close()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}
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
