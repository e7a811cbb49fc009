"""benchmarks/line_runs.py: N line benches judged on the worst run."""

from __future__ import annotations

import benchmarks.line_runs as line_runs
from benchmarks.markdown import runs_markdown


def _result(bare_per_s: float, saturated_per_s: float, paced_p99: float, bare_p99: float, drops: int) -> dict:
    return {
        "configurations": [
            {
                "group": "loop",
                "latency_ms": {"p50_ms": 10.0, "p99_ms": paced_p99},
                "drops": drops,
                "cpu": {"per_part_ms": {"OK": 1.0, "NG": 2.0}},
            },
            {"group": "bare", "latency_ms": {"p50_ms": 9.0, "p99_ms": bare_p99}, "throughput_per_s": bare_per_s},
            {
                "group": "saturated",
                "latency_ms": {"p50_ms": 50.0, "p99_ms": 90.0},
                "throughput_per_s": saturated_per_s,
                "drops": 0,
            },
        ],
        "comparisons": [],
    }


def test_the_worst_run_decides_every_goal(monkeypatch):
    results = iter([_result(100, 99, 12.0, 11.0, 0), _result(100, 90, 16.0, 11.5, 0), _result(100, 98, 12.5, 11.0, 1)])
    monkeypatch.setattr(line_runs, "bench_line", lambda **kwargs: next(results))
    final = line_runs.bench_line_runs(3, config_path="st.yaml")
    runs = final["runs"]
    assert [r["throughput_ratio"] for r in runs["rows"]] == [0.99, 0.9, 0.98]
    assert runs["worst"]["throughput_ratio"] == 0.9 and runs["worst"]["added_p99_ms"] == 4.5
    assert runs["worst"]["dropped_or_lost"] == 1
    assert runs["goals_met"] == {"throughput_ratio": False, "added_p99_ms": False, "dropped_or_lost": False}
    names = [c["name"] for c in final["comparisons"]]
    assert "worst of 3 runs: saturated loop / bare runner" in names
    text = "\n".join(runs_markdown(final))
    assert "## 3 consecutive runs (judged on the worst)" in text and "4.50 ms (goal <= 2.0 ms): MISSED" in text


def test_one_run_has_no_runs_section():
    assert runs_markdown({"configurations": []}) == []


def test_the_explainer_cost_is_judged_on_all_runs_verdicts_pooled(monkeypatch):
    import json

    import numpy as np

    quiet = np.linspace(10.0, 20.0, 101)  # p99 19.9 ms per run
    # Run 1: one spike makes its own p99 far worse; pooled with a calm run 2 it weighs 1 of 202.
    spiky, calm = quiet.copy(), quiet + 0.5
    spiky[-2:] = 40.0

    def one_run(with_ms):
        result = _result(100, 99, 12.0, 11.0, 0)
        result["raw_latencies_ms"] = {"with_explainer": with_ms, "without_explainer": quiet}
        return result

    results = iter([one_run(spiky), one_run(calm)])
    monkeypatch.setattr(line_runs, "bench_line", lambda **kwargs: next(results))
    final = line_runs.bench_line_runs(2, config_path="st.yaml")
    cost = final["runs"]["explainer"]
    assert cost["verdicts_with"] == 202 and cost["verdicts_without"] == 202
    assert cost["per_run_added_p99_ms"][0] > 10 and cost["per_run_added_p99_ms"][1] == 0.5
    pooled = np.percentile(np.concatenate([spiky, calm]), 99) - np.percentile(np.concatenate([quiet, quiet]), 99)
    assert cost["added_p99_ms"] == round(float(pooled), 3) and cost["goal_met"] == (pooled <= 2.0)
    assert "raw_latencies_ms" not in final
    json.dumps(final)  # what the CLI writes: no arrays left in it
    text = "\n".join(runs_markdown(final))
    assert "all 2 runs pooled (202 / 202 verdicts)" in text


def test_without_the_explainer_there_is_no_pooled_figure(monkeypatch):
    monkeypatch.setattr(line_runs, "bench_line", lambda **kwargs: _result(100, 99, 12.0, 11.0, 0))
    assert "explainer" not in line_runs.bench_line_runs(2, config_path="st.yaml")["runs"]
