"""Benchmark arithmetic against values computed by hand."""

import math

import numpy as np
import pytest

from benchmarks.compare import compare_results, format_comparison
from benchmarks.stats import cdf_points, check_budget, percentile, ratio, speedup, summarize_ms, summarize_ns
from benchmarks.timing import time_calls
from eiad.errors import DataError


def test_percentiles_of_one_to_ten_match_the_linear_method_by_hand():
    # given 1..10 ms; linear: rank = p/100 * (n-1) = p/100 * 9, interpolate between neighbours
    samples = list(range(1, 11))
    # when
    s = summarize_ms(samples)
    # then
    assert s.p50_ms == pytest.approx(5.5)  # rank 4.5 -> 5 + 0.5
    assert s.p90_ms == pytest.approx(9.1)  # rank 8.1 -> 9 + 0.1
    assert s.p95_ms == pytest.approx(9.55)  # rank 8.55
    assert s.p99_ms == pytest.approx(9.91)  # rank 8.91
    assert s.p999_ms == pytest.approx(9.991)  # rank 8.991
    assert s.mean_ms == pytest.approx(5.5)
    assert s.std_ms == pytest.approx(math.sqrt(8.25))  # population std of 1..10
    assert (s.min_ms, s.max_ms, s.count, s.outliers, s.method) == (1.0, 10.0, 10, 0, "linear")


def test_an_outlier_is_counted_and_shown_as_max_not_removed():
    # given one 100 ms hiccup among 1..10 ms (p50 = 6, so the outlier line is 18 ms)
    s = summarize_ms([*range(1, 11), 100])
    assert s.p50_ms == 6.0
    assert s.outliers == 1
    assert s.max_ms == 100.0
    assert s.count == 11


def test_nanosecond_samples_are_converted_to_ms_and_single_percentile_agrees():
    s = summarize_ns([1_000_000, 3_000_000])
    assert s.p50_ms == pytest.approx(2.0)
    assert percentile([1.0, 3.0], 25) == pytest.approx(1.5)


def test_no_samples_or_nan_samples_raise_a_data_error():
    with pytest.raises(DataError, match="no latency samples"):
        summarize_ms([])
    with pytest.raises(DataError, match="not finite"):
        summarize_ms([1.0, float("nan")])


def test_cdf_points_run_from_min_to_max():
    points = cdf_points([1.0, 2.0, 3.0, 4.0])
    assert points[0] == [0.0, 1.0]
    assert points[-1] == [100.0, 4.0]
    assert all(a[1] <= b[1] for a, b in zip(points, points[1:]))


def test_budget_met_when_p99_fits_and_the_line_rate_is_sustained():
    # given 30 fps x 4 cameras = 120 verdicts/s required, 15 ms budget
    check = check_budget(p99_ms=12.0, achieved_fps=119.5, budget_ms=15.0, fps_per_camera=30, cameras=4)
    # then 119.5 >= 120 * 0.99 = 118.8
    assert check.required_fps == 120.0
    assert check.met and check.latency_ok and check.throughput_ok
    assert check.reasons == ()


def test_budget_fails_on_latency_throughput_and_drops_with_reasons():
    slow = check_budget(p99_ms=15.01, achieved_fps=120, budget_ms=15.0, fps_per_camera=30, cameras=4)
    assert not slow.met and not slow.latency_ok and slow.throughput_ok
    assert "15.01 ms exceeds the 15 ms budget" in slow.reasons[0]
    short = check_budget(p99_ms=5, achieved_fps=118.7, budget_ms=15.0, fps_per_camera=30, cameras=4)
    assert not short.met and not short.throughput_ok  # 118.7 < 118.8
    dropped = check_budget(p99_ms=5, achieved_fps=120, budget_ms=15, fps_per_camera=30, cameras=4, dropped=3)
    assert not dropped.met and dropped.latency_ok and dropped.throughput_ok
    assert dropped.reasons == ("3 frames were dropped",)
    exact = check_budget(
        p99_ms=15.0, achieved_fps=120, budget_ms=15.0, fps_per_camera=30, cameras=4, throughput_tolerance=0.0
    )
    assert exact.met  # the budget is inclusive


def test_ratio_and_speedup_edge_cases():
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) == math.inf
    assert math.isnan(ratio(0.0, 0.0))
    assert math.isnan(ratio(None, 1.0))
    assert speedup(candidate_latency_ms=2.0, reference_latency_ms=8.0) == 4.0


def _result(configs):
    return {"schema": "eiad-bench/1", "configurations": configs}


def test_compare_gives_b_over_a_ratios_and_lists_unmatched_configurations():
    # given run A and run B, B twice the throughput and half the p99 on "ort-cpu b1"
    a = _result(
        [
            {"name": "ort-cpu b1", "throughput_per_s": 100.0, "latency_ms": {"p50_ms": 8.0, "p99_ms": 10.0}},
            {"name": "torch b1", "throughput_per_s": 50.0},
        ]
    )
    b = _result(
        [
            {"name": "ort-cpu b1", "throughput_per_s": 200.0, "latency_ms": {"p50_ms": 4.0, "p99_ms": 5.0}},
            {"name": "ort-cuda b1", "throughput_per_s": 900.0},
        ]
    )
    # when
    cmp = compare_results(a, b)
    # then
    by_metric = {r.metric: r for r in cmp.ratios}
    assert by_metric["throughput_per_s"].ratio == 2.0 and by_metric["throughput_per_s"].better is True
    assert by_metric["p50_ms"].ratio == 0.5 and by_metric["p99_ms"].ratio == 0.5 and by_metric["p99_ms"].better is True
    assert cmp.only_in_a == ("torch b1",) and cmp.only_in_b == ("ort-cuda b1",)
    text = format_comparison(cmp)
    assert "2.000" in text and "only in A: torch b1" in text and "only in B: ort-cuda b1" in text


def test_time_calls_honours_minimum_iterations_warmup_and_sync():
    # given a function that counts its calls and a sync hook that counts syncs
    calls, syncs = [], []
    run = time_calls(
        lambda: calls.append(1), warmup=3, min_duration_s=0.0, min_iterations=20, sync=lambda: syncs.append(1)
    )
    # then: warm-up calls are not timed, every call is synced
    assert run.iterations == 20 and len(calls) == 23 and len(syncs) == 23
    assert run.samples_ns.dtype == np.int64 and np.all(run.samples_ns >= 0)
    assert run.throughput(items_per_call=4) == pytest.approx(80 / run.wall_s)


def test_time_calls_runs_at_least_the_minimum_duration():
    import time

    run = time_calls(lambda: time.sleep(0.001), warmup=0, min_duration_s=0.05, min_iterations=1)
    assert run.wall_s >= 0.05
    assert run.samples_ms.min() >= 1.0
