"""benchmarks/cpu_cost.py: CPU per frame outside the model, in line and in the background."""

from __future__ import annotations

import threading
import time

from benchmarks.cpu_cost import cpu_markdown, cpu_section, thread_cpu_s


def _busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_thread_cpu_counts_a_named_busy_thread():
    release = threading.Event()

    def work():
        _busy(0.15)
        release.wait(5.0)

    thread = threading.Thread(target=work, name="busy-worker")
    before = thread_cpu_s()
    thread.start()
    time.sleep(0.3)
    after = thread_cpu_s()
    release.set()
    thread.join()
    assert "busy-worker" not in before
    assert 0.1 <= after["busy-worker"] <= 0.3  # 10 ms clock ticks


def test_section_splits_ok_and_ng_leaves_out_the_model_and_the_bench_clients():
    ms = 1_000_000
    per_frame = [
        ("OK", {"preprocess": ms // 10, "inference": 9 * ms, "verdict": ms // 5}),
        ("OK", {"preprocess": ms // 10, "inference": 9 * ms, "verdict": ms // 5}),
        ("NG", {"preprocess": ms // 10, "inference": 9 * ms, "verdict": ms}),
    ]
    before = {"mqtt-dispatch": 1.0, "paho-mqtt-client-bench-plc-1": 5.0}
    after = {"mqtt-dispatch": 1.3, "paho-mqtt-client-bench-plc-1": 9.0}
    section = cpu_section(per_frame, before, after, frames=3, leave_out=("paho-mqtt-client-bench-plc",))
    assert section["inline_p50_ms"] == {"preprocess": {"OK": 0.1, "NG": 0.1}, "verdict": {"OK": 0.2, "NG": 1.0}}
    assert section["background_ms_per_frame"] == {"mqtt-dispatch": 100.0}  # 0.3 s over 3 frames
    assert section["per_part_ms"] == {"OK": 100.3, "NG": 101.1}
    assert section["goals_met"] == {"OK": False, "NG": False}
    assert section["model_p50_ms"] == 9.0
    table = "\n".join(cpu_markdown([{"name": "loop", "cpu": section}]))
    assert "| verdict | 0.200 | 1.000 |" in table and "background: mqtt-dispatch" in table
    assert "goal OK MISSED, NG MISSED" in table
