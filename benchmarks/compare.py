"""Ratios between two benchmark results (`eiad bench compare A.json B.json`).

Configurations are matched by name. For each matched one: throughput B/A (> 1: B does
more per second) and latency p50/p99 B/A (< 1: B is faster). Configurations present in
only one file are listed, not silently skipped. Pure: thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.stats import ratio

_LATENCY_KEYS = ("p50_ms", "p99_ms")


@dataclass(frozen=True)
class Ratio:
    configuration: str
    metric: str  # "throughput_per_s", "p50_ms", "p99_ms"
    a: float
    b: float
    ratio: float  # b / a

    @property
    def better(self) -> bool | None:
        """Whether B is better on this metric (None when equal or not comparable)."""
        if self.ratio != self.ratio or self.ratio == 1.0:  # nan or equal
            return None
        return self.ratio > 1.0 if self.metric == "throughput_per_s" else self.ratio < 1.0


@dataclass(frozen=True)
class Comparison:
    ratios: tuple[Ratio, ...]
    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]


def compare_results(a: dict, b: dict) -> Comparison:
    by_name_a = {c["name"]: c for c in a.get("configurations", [])}
    by_name_b = {c["name"]: c for c in b.get("configurations", [])}
    ratios: list[Ratio] = []
    for name, ca in by_name_a.items():
        cb = by_name_b.get(name)
        if cb is None:
            continue
        if ca.get("throughput_per_s") is not None and cb.get("throughput_per_s") is not None:
            ratios.append(
                Ratio(
                    name,
                    "throughput_per_s",
                    ca["throughput_per_s"],
                    cb["throughput_per_s"],
                    ratio(cb["throughput_per_s"], ca["throughput_per_s"]),
                )
            )
        la, lb = ca.get("latency_ms") or {}, cb.get("latency_ms") or {}
        for key in _LATENCY_KEYS:
            if key in la and key in lb:
                ratios.append(Ratio(name, key, la[key], lb[key], ratio(lb[key], la[key])))
    return Comparison(
        ratios=tuple(ratios),
        only_in_a=tuple(n for n in by_name_a if n not in by_name_b),
        only_in_b=tuple(n for n in by_name_b if n not in by_name_a),
    )


def format_comparison(comparison: Comparison, label_a: str = "A", label_b: str = "B") -> str:
    """A plain-text table for the terminal."""
    lines = [f"{'configuration':36} {'metric':16} {label_a[:12]:>12} {label_b[:12]:>12} {'B/A':>8}  verdict"]
    for r in comparison.ratios:
        verdict = {True: "B better", False: "B worse", None: "same"}[r.better]
        lines.append(f"{r.configuration[:36]:36} {r.metric:16} {r.a:12.3f} {r.b:12.3f} {r.ratio:8.3f}  {verdict}")
    if comparison.only_in_a:
        lines.append(f"only in {label_a}: {', '.join(comparison.only_in_a)}")
    if comparison.only_in_b:
        lines.append(f"only in {label_b}: {', '.join(comparison.only_in_b)}")
    if not comparison.ratios:
        lines.append("no configuration appears in both results: nothing to compare (names must match)")
    return "\n".join(lines)
