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
