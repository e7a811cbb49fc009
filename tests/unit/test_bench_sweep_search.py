"""The sweep's search for the highest sustainable fps, against hand-made probe outcomes."""

from benchmarks.sweep import highest_sustainable


def _probe(passes):
    return lambda fps: (passes(fps), {"fps": fps})


def test_a_slow_low_end_does_not_hide_the_passing_region():
    # given a box that misses the budget at 5 fps (idle wake-up) but meets it from 10 to 70 fps
    best, history = highest_sustainable(_probe(lambda f: 10 <= f <= 70), 5.0, 240.0, steps=4)
    # then the ladder finds the region and the bisection lands within one step below 70
    assert 60.0 <= best <= 70.0
    assert [f for f, _, _ in history][:5] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert all(passed == (10 <= f <= 70) for f, passed, _ in history)


def test_nothing_passing_gives_zero_and_everything_passing_gives_the_maximum():
    assert highest_sustainable(_probe(lambda f: False), 5.0, 240.0, steps=3)[0] == 0.0
    assert highest_sustainable(_probe(lambda f: True), 5.0, 240.0, steps=3)[0] == 240.0


def _loop(capacity_fps, slow_latency_at=()):
    """A loop that keeps up to `capacity_fps`, and misses only the latency budget at `slow_latency_at`."""
    def probe(fps):
        throughput_ok = fps <= capacity_fps
        passed = throughput_ok and fps not in slow_latency_at
        return passed, {"fps": fps, "budget": {"throughput_ok": throughput_ok, "met": passed}}
    return probe


def test_the_ladder_climbs_past_latency_misses_and_stops_over_capacity():
    # 10 and 20 fps miss only the p99 budget (noise near it); capacity ends between 40 and 80 fps
    best, history = highest_sustainable(_loop(50, slow_latency_at=(10.0, 20.0)), 5.0, 1000.0, steps=3)
    rates = [f for f, _, _ in history]
    assert rates[:5] == [5.0, 10.0, 20.0, 40.0, 80.0]  # past the two latency misses, up to the first rung over capacity
    assert 160.0 not in rates  # nothing above the first rung over capacity is probed
    assert 45.0 <= best <= 50.0  # the bisection between 40 and 80 lands just below capacity


def test_a_latency_only_miss_is_judged_again_on_two_probes_together():
    import numpy as np

    from benchmarks.loop_harness import LoopRun
    from benchmarks.stats import check_budget
    from benchmarks.sweep import latency_only_miss, pool_runs

    def run(total_ms, throughput):
        return LoopRun(stages_ms={"total": np.asarray(total_ms, float)}, frames_captured=len(total_ms), verdicts_received=len(total_ms),
                       lost=0, dropped=0, late=0, duplicates=0, throughput_per_s=throughput, verdicts={"OK": len(total_ms)})

    assert latency_only_miss(check_budget(21.0, 60.0, 20.0, 30, 2).to_dict())
    assert not latency_only_miss(check_budget(21.0, 50.0, 20.0, 30, 2).to_dict())  # also short of the rate: a capacity miss
    assert not latency_only_miss(check_budget(21.0, 60.0, 20.0, 30, 2, dropped=1).to_dict())
    assert not latency_only_miss(check_budget(19.0, 60.0, 20.0, 30, 2).to_dict())  # met
    # given a first probe whose one 30 ms frame in 40 sets its p99, and a clean second probe
    first, second = run([10.0] * 39 + [30.0], 61.0), run([10.0] * 40, 59.5)
    pooled = pool_runs(first, second)
    # then the pooled p99 (80 frames, numpy 'linear') is 10 + 0.21 x 20 = 14.2 ms, and the lower throughput is kept
    assert np.percentile(first.stages_ms["total"], 99) > 20.0
    assert np.isclose(np.percentile(pooled.stages_ms["total"], 99), 14.2)
    assert pooled.throughput_per_s == 59.5 and pooled.frames_captured == 80 and pooled.verdicts == {"OK": 80}
