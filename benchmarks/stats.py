"""Latency statistics, budgets and ratios: the arithmetic every benchmark shares.

Percentiles use numpy's "linear" method (Hyndman & Fan type 7, numpy's default): the
p-th percentile of n sorted samples x[0..n-1] is x[k] + f * (x[k+1] - x[k]) with
k + f = p/100 * (n - 1). Outliers are reported, never removed: a sample counts as an
outlier when it exceeds `outlier_factor` x p50 (3 by default); the max is always shown.

Pure functions and frozen values: thread-safe.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from eiad.errors import DataError

log = logging.getLogger(__name__)

PERCENTILE_METHOD = "linear"
OUTLIER_FACTOR = 3.0
# Quantiles kept in result JSON so the latency CDF can be re-plotted without raw samples.
CDF_QUANTILES = tuple(
    float(q) for q in np.concatenate([np.arange(0, 99, 1.0), np.arange(99, 100, 0.1), [99.9, 99.99, 100.0]])
)


@dataclass(frozen=True)
class LatencySummary:
    """Summary of one latency sample set; every figure in milliseconds."""

    count: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    outliers: int  # samples > outlier_factor * p50
    outlier_factor: float = OUTLIER_FACTOR
    method: str = PERCENTILE_METHOD

    def to_dict(self) -> dict:
        return asdict(self)


def _as_array(samples_ms) -> np.ndarray:
    values = np.asarray(samples_ms, dtype=np.float64).ravel()
    if values.size == 0:
        raise DataError(
            "no latency samples were recorded: the run produced no result (check the source and the duration)"
        )
    if not np.all(np.isfinite(values)):
        raise DataError(
            f"{int(np.sum(~np.isfinite(values)))} latency samples are not finite: the clock or the stamps are broken"
        )
    return values


def percentile(samples_ms, q: float) -> float:
    """The q-th percentile (0..100) with numpy's 'linear' method."""
    return float(np.percentile(_as_array(samples_ms), q, method=PERCENTILE_METHOD))


def summarize_ms(samples_ms, outlier_factor: float = OUTLIER_FACTOR) -> LatencySummary:
    """Count, mean, population std (ddof=0), min, p50/p90/p95/p99/p99.9, max and outliers."""
    values = _as_array(samples_ms)
    p50, p90, p95, p99, p999 = np.percentile(values, [50, 90, 95, 99, 99.9], method=PERCENTILE_METHOD)
    return LatencySummary(
        count=int(values.size),
        mean_ms=float(values.mean()),
        std_ms=float(values.std()),
        min_ms=float(values.min()),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p95_ms=float(p95),
        p99_ms=float(p99),
        p999_ms=float(p999),
        max_ms=float(values.max()),
        outliers=int(np.sum(values > outlier_factor * p50)),
        outlier_factor=outlier_factor,
    )


def summarize_ns(samples_ns, outlier_factor: float = OUTLIER_FACTOR) -> LatencySummary:
    return summarize_ms(np.asarray(samples_ns, dtype=np.float64) / 1e6, outlier_factor)


def cdf_points(samples_ms) -> list[list[float]]:
    """[[quantile 0..100, latency ms], ...] at CDF_QUANTILES: enough to plot a CDF later."""
    values = _as_array(samples_ms)
    return [
        [q, float(v)] for q, v in zip(CDF_QUANTILES, np.percentile(values, CDF_QUANTILES, method=PERCENTILE_METHOD))
    ]


@dataclass(frozen=True)
class BudgetCheck:
    """Does a configuration keep up with the line? `met` needs every condition."""

    budget_ms: float
    p99_ms: float
    required_fps: float  # fps per camera x cameras
    achieved_fps: float
    throughput_tolerance: float
    dropped: int
    latency_ok: bool
    throughput_ok: bool
    met: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return out


def check_budget(
    p99_ms: float,
    achieved_fps: float,
    budget_ms: float,
    fps_per_camera: float,
    cameras: int,
    dropped: int = 0,
    throughput_tolerance: float = 0.01,
) -> BudgetCheck:
    """p99 <= budget_ms, achieved >= fps_per_camera * cameras * (1 - tolerance), no drops.

    The tolerance (1 % by default) only absorbs the edges of a finite measurement window
    (the last frames' latency counts against the rate); it is stated in every report.
    """
    required = float(fps_per_camera) * int(cameras)
    latency_ok = bool(p99_ms <= budget_ms)
    throughput_ok = bool(achieved_fps >= required * (1.0 - throughput_tolerance))
    reasons = []
    if not latency_ok:
        reasons.append(f"p99 {p99_ms:.2f} ms exceeds the {budget_ms:g} ms budget")
    if not throughput_ok:
        reasons.append(
            f"{achieved_fps:.1f} verdicts/s is below the required {required:g}/s ({fps_per_camera:g} fps x {cameras} "
            "cameras)"
        )
    if dropped:
        reasons.append(f"{dropped} frames were dropped")
    return BudgetCheck(
        budget_ms=float(budget_ms),
        p99_ms=float(p99_ms),
        required_fps=required,
        achieved_fps=float(achieved_fps),
        throughput_tolerance=float(throughput_tolerance),
        dropped=int(dropped),
        latency_ok=latency_ok,
        throughput_ok=throughput_ok,
        met=latency_ok and throughput_ok and dropped == 0,
        reasons=tuple(reasons),
    )


def ratio(new: float, old: float) -> float:
    """new / old; inf when old is 0 and new is not, nan when both are 0 or either is missing."""
    if (
        new is None
        or old is None
        or (isinstance(new, float) and math.isnan(new))
        or (isinstance(old, float) and math.isnan(old))
    ):
        return float("nan")
    if old == 0:
        return float("nan") if new == 0 else float("inf")
    return float(new) / float(old)


def speedup(candidate_latency_ms: float, reference_latency_ms: float) -> float:
    """How many times faster the candidate is (reference / candidate): > 1 means faster."""
    return ratio(reference_latency_ms, candidate_latency_ms)
