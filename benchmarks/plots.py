"""PNG plots of one benchmark result (matplotlib, Agg backend: no display needed).

Each plot is drawn only when the result has its data: latency CDF per configuration
(from `cdf_ms`), stage breakdown bars (from `stages_ms`, p50), throughput vs cameras
(from configurations with `cameras` set, one line per series). Not thread-safe.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

_STAGES = ("capture", "queue", "preprocess", "inference", "postprocess", "outbox", "publish+broker")


def write_plots(result: dict, out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    configs = result.get("configurations", [])
    written: dict[str, Path] = {}
    with_cdf = [c for c in configs if c.get("cdf_ms")]
    if with_cdf:
        fig, ax = plt.subplots(figsize=(8, 5))
        for c in with_cdf:
            qs, ms = zip(*c["cdf_ms"])
            ax.plot(ms, [q / 100 for q in qs], label=c["name"])
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of calls/frames at or below")
        ax.set_title("Latency CDF per configuration")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        written["latency_cdf"] = _save(fig, out_dir / "latency_cdf.png", plt)
    staged = [c for c in configs if c.get("stages_ms")]
    if staged:
        fig, ax = plt.subplots(figsize=(8, 0.6 * len(staged) + 2))
        lefts = [0.0] * len(staged)
        for stage in _STAGES:
            widths = [c["stages_ms"].get(stage, {}).get("p50_ms", 0.0) for c in staged]
            if any(widths):
                ax.barh([c["name"] for c in staged], widths, left=lefts, label=stage)
                lefts = [a + b for a, b in zip(lefts, widths)]
        ax.set_xlabel("p50 ms per stage (stacked)")
        ax.set_title("Where the time goes: capture -> verdict received")
        ax.legend(fontsize=7, loc="lower right")
        written["stages"] = _save(fig, out_dir / "stages.png", plt)
    series: dict[str, list[tuple[int, float]]] = {}
    for c in configs:
        if c.get("cameras") and c.get("throughput_per_s") is not None:
            series.setdefault(c.get("series") or c.get("group", ""), []).append(
                (int(c["cameras"]), float(c["throughput_per_s"]))
            )
    if any(len(points) > 1 for points in series.values()) or result.get("kind") == "sweep" and series:
        fig, ax = plt.subplots(figsize=(7, 5))
        for name, points in sorted(series.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        ax.set_xlabel("cameras")
        ax.set_ylabel("verdicts per second (total)")
        ax.set_title("Throughput vs cameras")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        written["throughput_vs_cameras"] = _save(fig, out_dir / "throughput_vs_cameras.png", plt)
    return written


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
