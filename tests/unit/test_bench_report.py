"""Report writing: JSON keys, the Markdown table, PNGs that are real images."""

import json

import cv2
import numpy as np
import pytest

from benchmarks.markdown import render_markdown
from benchmarks.report import SCHEMA, load_result, new_result, write_report
from benchmarks.stats import cdf_points, check_budget, summarize_ms
from eiad.errors import DataError


def _config(name, samples, cameras=None, stages=False, series="loop"):
    config = {
        "name": name,
        "group": "loop",
        "series": series,
        "latency_ms": summarize_ms(samples).to_dict(),
        "cdf_ms": cdf_points(samples),
        "throughput_per_s": 100.0 * (cameras or 1),
        "notes": [],
    }
    if cameras:
        config["cameras"] = cameras
    if stages:
        config["stages_ms"] = {
            "inference": {"p50_ms": 2.0, "p99_ms": 4.0},
            "total": {"p50_ms": 5.0, "p99_ms": 9.0},
            "publish+broker": {"p50_ms": 1.0, "p99_ms": 3.0},
        }
        config["budget"] = check_budget(9.0, 99.5, 15.0, 100, cameras or 1).to_dict()
    return config


@pytest.fixture
def result():
    rng = np.random.default_rng(0)
    result = new_result("line", {"fps_per_camera": 100}, command="eiad bench line --config x.yaml")
    result["configurations"] = [
        _config("loop 1 cam", rng.gamma(4, 1, 500), cameras=1, stages=True),
        _config("loop 2 cams", rng.gamma(4, 1.2, 500), cameras=2, stages=True),
        _config("bare runner b1", rng.gamma(2, 0.5, 500), series="bare"),
    ]
    result["comparisons"] = [
        {
            "name": "saturated loop / bare runner",
            "metric": "throughput ratio",
            "ratio": 0.97,
            "goal": ">= 0.95",
            "goal_met": True,
        }
    ]
    return result


def test_write_report_produces_json_markdown_and_valid_pngs(tmp_path, result):
    # when
    written = write_report(result, tmp_path)
    # then: JSON round-trips with the environment and the raw percentiles
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["schema"] == SCHEMA and data["kind"] == "line"
    assert {"machine", "cpu", "cpu_count", "memory_gb", "gpu", "versions"} <= data["environment"].keys()
    assert "numpy" in data["environment"]["versions"] and "python" in data["environment"]["versions"]
    assert {"p50_ms", "p99_ms", "p999_ms", "max_ms", "outliers", "method"} <= data["configurations"][0][
        "latency_ms"
    ].keys()
    assert load_result(tmp_path / "result.json")["command"] == "eiad bench line --config x.yaml"
    # and every plot with data is a decodable PNG
    assert {"latency_cdf", "stages", "throughput_vs_cameras"} <= written.keys()
    for key in ("latency_cdf", "stages", "throughput_vs_cameras"):
        assert written[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = cv2.imread(str(written[key]))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
    md = (tmp_path / "report.md").read_text()
    assert "![latency_cdf](latency_cdf.png)" in md


def test_markdown_table_shows_percentiles_budget_stages_and_ratios(result):
    md = render_markdown(result, {})
    row = next(line for line in md.splitlines() if line.startswith("| loop 1 cam |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    lat = result["configurations"][0]["latency_ms"]
    assert cells[1] == "100.0" and cells[2] == "500"
    assert cells[3] == f"{lat['p50_ms']:.2f}" and cells[5] == f"{lat['p99_ms']:.2f}"
    assert cells[-1] == "met"
    assert "| configuration | inference | publish+broker | total |" in md
    assert "| loop 1 cam | 2.00 / 4.00 | 1.00 / 3.00 | 5.00 / 9.00 |" in md
    assert "| saturated loop / bare runner | throughput ratio | 0.970 | >= 0.95 | yes |" in md
    assert "percentiles by numpy 'linear'" in md


def test_a_budget_miss_is_spelled_out_in_the_table(result):
    result["configurations"][0]["budget"] = check_budget(20.0, 50.0, 15.0, 100, 1).to_dict()
    md = render_markdown(result, {})
    assert "NOT met: p99 20.00 ms exceeds the 15 ms budget" in md


def test_no_throughput_plot_without_a_camera_series(tmp_path):
    result = new_result("engine", {}, command="x")
    result["configurations"] = [_config("ort-cpu b1", [1.0, 2.0, 3.0])]
    written = write_report(result, tmp_path)
    assert "latency_cdf" in written and "throughput_vs_cameras" not in written and "stages" not in written


def test_load_result_rejects_files_that_are_not_results(tmp_path):
    (tmp_path / "other.json").write_text('{"hello": 1}')
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match="not an eiad bench result"):
        load_result(tmp_path / "other.json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_result(tmp_path / "broken.json")
    with pytest.raises(DataError, match="not found"):
        load_result(tmp_path / "missing.json")


def test_sweep_table_says_what_stops_a_higher_rate():
    from benchmarks.markdown import sweep_limit

    def probe(fps, met, reasons=()):
        return {"fps": fps, "met": met, "p99_ms": 1.0, "reasons": list(reasons)}

    capped = {
        "max_fps_per_camera": 60.0,
        "probes": [
            probe(5, True),
            probe(10, True),
            probe(20, True),
            probe(40, True),
            probe(80, False, ["p99 22.00 ms exceeds the 15 ms budget"]),
            probe(60, True),
            probe(70, False, ["dropped 3 frames"]),
        ],
    }
    assert sweep_limit(capped) == "at 70.0 fps: dropped 3 frames"  # the lowest failing rate above the best
    none = {
        "max_fps_per_camera": 0.0,
        "probes": [probe(5, False, ["p99 40.00 ms exceeds the 15 ms budget"]), probe(10, False)],
    }
    assert sweep_limit(none) == "at 5.0 fps: p99 40.00 ms exceeds the 15 ms budget"
    assert (
        sweep_limit({"max_fps_per_camera": 240.0, "probes": [probe(240, True)]}) == "the search's upper end (--fps-max)"
    )
    result = new_result("sweep", {})
    result["sweep"] = [
        {
            "artifact": "a",
            "resolution": "224x224",
            "precision": "fp16",
            "backend": "ort-cpu",
            "batch": 1,
            "cameras": 2,
            "p99_ms": None,
            **none,
        }
    ]
    text = render_markdown(result, {})
    assert (
        "| a | 224x224 | fp16 | ort-cpu | 1 | 2 | 0.0 | - | at 5.0 fps: p99 40.00 ms exceeds the 15 ms budget |" in text
    )
