"""The loop benchmark leaves a run's first frames out of its latency statistics, but still
counts them as delivered."""

from types import SimpleNamespace

from benchmarks.loop_harness import collect, warmup_frames


def test_warmup_is_three_frames_or_five_percent_never_more_than_half():
    assert [warmup_frames(n) for n in (2, 6, 20, 100, 1000)] == [1, 3, 3, 5, 50]


def test_cold_first_frames_are_delivered_but_not_timed():
    # given 20 frames whose first three took 100 ms to reach the subscriber and the rest 1 ms
    ms = 1_000_000
    stamps, received = {}, {}
    for i in range(20):
        captured = i * 50 * ms
        stamps[f"id{i}"] = {"_verdict": "OK", "captured": captured}
        received[f"id{i}"] = captured + (100 if i < 3 else 1) * ms
    timing = SimpleNamespace(stamps=stamps)
    listener = SimpleNamespace(received=received, duplicates=0)
    # when the run is collected
    run = collect(timing, listener, dropped=0, late=0, captured=20)
    # then every verdict counts as received, and the latency statistics hold only the warm frames
    assert run.verdicts_received == 20 and run.lost == 0
    assert len(run.stages_ms["total"]) == 17
    assert run.stages_ms["total"].max() == 1.0
