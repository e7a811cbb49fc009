"""`eiad bench line` with the station's explainer: the explanation section's arithmetic on
hand-made stamps, why a run does not measure explanations, and a short real run (tiny
vision graph + tiny exported LLM, a Mosquitto of the bench's own, paho subscribers)."""

import json

import pytest

from benchmarks.explain_bench import explanation_section, plan_explanations
from commands.main import main
from edge.config import load_station_config
from edge.sinks.mqtt.broker import mosquitto_binary
from eiad.manifest import load_manifest
from tests.support_bench.station import tiny_station

needs_mosquitto = pytest.mark.skipif(mosquitto_binary() is None, reason="Mosquitto not installed (.ci/run installs it)")
MS = 1_000_000  # ns


def test_explanation_section_from_stamps_matches_hand_computed_figures():
    # given two explained parts received (a, b), one explained but never received (c), and a
    # message for a part this run never captured (x: ignored)
    captured = {"a": 0, "b": 1 * MS, "c": 2 * MS}
    stored = {"a": 50 * MS, "b": 80 * MS}
    received = {"a": 52 * MS, "b": 83 * MS, "x": 90 * MS}
    messages = {
        "a": {
            "meta": {"tokens": 4, "tokens_per_s": 40.0, "generation_ms": 100.0, "prefill_ms": 20.0, "backlog_ms": 0.0}
        },
        "b": {
            "meta": {"tokens": 6, "tokens_per_s": 20.0, "generation_ms": 300.0, "prefill_ms": 60.0, "backlog_ms": 90.0}
        },
    }
    stats = {"submitted": 10, "skipped_by_mode": 6, "queued": 4, "dropped": 1, "explained": 3, "failed": 0}
    # when
    section = explanation_section(
        captured, stored, received, messages, stats, {"precision": "int8"}, loop_end_ns=60 * MS
    )
    # then latencies are capture -> received (52, 82 ms), backlog and generation come from meta
    assert section["latency_ms"]["count"] == 2
    assert section["latency_ms"]["p50_ms"] == pytest.approx(67.0) and section["latency_ms"]["max_ms"] == pytest.approx(
        82.0
    )
    assert section["backlog_ms"]["p50_ms"] == pytest.approx(45.0)
    assert section["generation_ms"]["p50_ms"] == pytest.approx(200.0) and section["prefill_ms"][
        "max_ms"
    ] == pytest.approx(60.0)
    assert section["publish_ms"]["p50_ms"] == pytest.approx(2.5)  # stored -> received: 2 and 3 ms
    assert section["tokens"] == {"total": 10, "mean": 5.0, "min": 4, "max": 6}
    # tokens/s: p50 of (40, 20); 10 tokens / 0.4 s generation; 10 / (0.4 - 0.08) s decoding
    assert section["tokens_per_s"] == pytest.approx({"p50": 30.0, "overall": 25.0, "decode": 31.25})
    assert section["counts"] == {
        "submitted": 10,
        "skipped_by_mode": 6,
        "queued": 4,
        "dropped_by_backlog": 1,
        "explained": 3,
        "failed": 0,
        "received": 2,
        "not_received": 1,
        "received_after_loop": 1,
    }
    assert section["settings"] == {"precision": "int8"} and section["measured"] is True


def test_explanation_section_with_nothing_explained_has_no_figures():
    stats = {"submitted": 5, "skipped_by_mode": 5, "queued": 0, "dropped": 0, "explained": 0, "failed": 0}
    section = explanation_section({"a": 0}, {}, {}, {}, stats, {})
    assert section["latency_ms"] is None and section["generation_ms"] is None
    assert section["tokens"]["mean"] is None and section["tokens_per_s"] == {
        "p50": None,
        "overall": None,
        "decode": None,
    }


def test_plan_says_precisely_why_explanations_are_not_measured(tmp_path):
    # given a station without an explainer section whose artifact has no llm/
    path = tiny_station(tmp_path)
    station = load_station_config(path)
    manifest = load_manifest(station.path(station.artifact))
    # then each reason names what to change
    assert "has no explainer: section" in plan_explanations(station, path, manifest).reason
    assert "--explainer off" in plan_explanations(station, path, manifest, "off").reason
    path.write_text(path.read_text() + "explainer: {mode: on_request}\n")
    assert "--explain-mode" in plan_explanations(load_station_config(path), path, manifest).reason
    plan = plan_explanations(load_station_config(path), path, manifest, mode="all")
    assert plan.config is None and "llm_config.json not found" in plan.reason and "eiad export llm" in plan.reason
    path.write_text(path.read_text().replace("{mode: on_request}", "{enabled: false}"))
    assert "enabled is false" in plan_explanations(load_station_config(path), path, manifest).reason


@pytest.fixture(scope="module")
def llm_station(tmp_path_factory):
    pytest.importorskip("torch")
    from tests.support_bench.llm_station import tiny_llm_station

    return tiny_llm_station(tmp_path_factory.mktemp("bench_llm_station"))


@needs_mosquitto
def test_line_with_the_explainer_reports_explanations_beside_the_verdicts(tmp_path, llm_station):
    # given a station whose explainer explains NG parts with the artifact's exported LLM
    out = tmp_path / "line"
    # when the line bench runs 30 frames (1 in 4 with a defect) with its comparison runs
    code = main(
        [
            "bench",
            "line",
            "--config",
            str(llm_station),
            "--fps",
            "25",
            "--cameras",
            "1",
            "--duration-s",
            "1.2",
            "--budget-ms",
            "1000",
            "--no-baseline",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    loop = next(c for c in result["configurations"] if c["group"] == "loop")
    section = result["explanations"]
    counts = section["counts"]
    # then every part was offered, NG parts were queued, and every queued part was explained
    # or dropped by the backlog (drained at the end); every explanation reached the subscriber
    assert counts["submitted"] == loop["frames_captured"] == 30
    assert counts["queued"] == loop["verdicts"]["NG"] > 0
    assert counts["explained"] + counts["dropped_by_backlog"] + counts["failed"] == counts["queued"]
    assert counts["received"] == counts["explained"] > 0 and counts["not_received"] == 0
    assert section["latency_ms"]["count"] == counts["received"]
    assert section["latency_ms"]["min_ms"] >= section["generation_ms"]["min_ms"] > 0
    assert 1 <= section["tokens"]["min"] <= section["tokens"]["max"] <= 6  # max_new_tokens 6
    assert section["tokens_per_s"]["overall"] > 0 and section["settings"]["precision"] == "fp32"
    # the explainer alone was timed on the run's NG parts
    assert section["alone"]["measured"] and section["alone"]["explanations"] == 5
    # the verdict figures stay, with the same load run once more without the explainer
    groups = {c["group"] for c in result["configurations"]}
    assert {"loop", "loop-no-explainer", "bare", "saturated"} == groups
    assert any(c["name"] == "paced loop p99 with explainer - without" for c in result["comparisons"])
    # the loop's own overhead over the bare runner is taken like for like: from the run without the explainer
    quiet = next(c for c in result["configurations"] if c["group"] == "loop-no-explainer")
    bare = next(c for c in result["configurations"] if c["group"] == "bare")
    added = next(c for c in result["comparisons"] if c["name"] == "paced loop without explainer p99 - bare runner p99")
    assert added["ratio"] == quiet["latency_ms"]["p99_ms"] - bare["latency_ms"]["p99_ms"]
    report = (out / "report.md").read_text()
    assert "## Explanations" in report and "capture -> explanation received" in report and "explainer alone" in report


@needs_mosquitto
def test_line_with_explainer_off_says_so(tmp_path, llm_station):
    out = tmp_path / "off"
    code = main(
        [
            "bench",
            "line",
            "--config",
            str(llm_station),
            "--fps",
            "25",
            "--cameras",
            "1",
            "--duration-s",
            "0.4",
            "--budget-ms",
            "1000",
            "--no-bare",
            "--no-baseline",
            "--explainer",
            "off",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["explanations"] == {"measured": False, "reason": "explanations: not measured (--explainer off)"}
    assert "explanations: not measured (--explainer off)" in result["notes"]
    assert "not measured (--explainer off)" in (out / "report.md").read_text()
