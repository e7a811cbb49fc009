"""The servers' cost report says what was measured and judges the goal on the pooled p99."""

from __future__ import annotations

from benchmarks.server_cost import report_md


def _result(added: float) -> dict:
    run = {"repeat": 0, "verdicts": 100, "lost": 0, "p50_ms": 9.0, "p99_ms": 15.0}
    on = {
        **run,
        "server": "on",
        "clients_connected": 3,
        "server_published": 100,
        "server_dropped": 0,
        "client_updates": 300,
        "verdict_to_event_ms": {"p50": 4.2, "p99": 11.5, "count": 300},
        "server_process_cpu_per_part_ms": 3.456,
    }
    pooled = {"count": 100, "p50_ms": 9.0}
    return {
        "settings": {
            "server": "opcua",
            "clients": 3,
            "config": "station.yaml",
            "fps_per_camera": 30.0,
            "cameras": 1,
            "duration_s": 30.0,
            "repeats": 1,
            "model_id": "m",
        },
        "environment": {"machine": "x86_64", "cpu": "cpu", "cpu_count": 2},
        "runs": [{**run, "server": "off"}, on],
        "pooled_ms": {"off": {**pooled, "p99_ms": 15.0}, "on": {**pooled, "p99_ms": 15.0 + added}},
        "added_p99_ms": added,
        "goal": {"added_p99_ms": 1.0, "met": added <= 1.0},
    }


def test_the_report_names_its_command_each_run_and_the_verdict_on_the_goal():
    text = report_md(_result(0.4))
    assert "python -m benchmarks.server_cost --server opcua --clients 3" in text
    assert "| 1 | on | 100 | 0 | 9.00 | 15.00 | 3 | 100 | 0 | 300 | 4.20 / 11.50 | - | 3.46 |" in text
    assert "| 1 | off | 100 | 0 | 9.00 | 15.00 | - | - | - | - | - | - | - |" in text
    assert "Added p99: +0.40 ms (goal <= +1 ms: met)" in text
    assert "goal <= +1 ms: MISSED" in report_md(_result(2.5))


def test_a_process_cpu_time_is_read_from_proc_and_grows_with_work():
    import os
    import time

    from benchmarks.cpu_cost import process_cpu_s

    before = process_cpu_s(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn 0.2 s of CPU
        pass
    assert process_cpu_s(os.getpid()) - before >= 0.15
    assert process_cpu_s(None) == 0.0
