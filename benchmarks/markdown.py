"""The Markdown report of one benchmark result (see benchmarks/report.py for the document)."""

from __future__ import annotations

import math

from benchmarks.cpu_cost import cpu_markdown

STAGE_ORDER = ("capture", "queue", "preprocess", "inference", "postprocess", "outbox", "publish+broker", "total")


def _f(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _latency_rows(configs: list[dict]) -> list[list[str]]:
    rows = []
    for c in configs:
        lat = c.get("latency_ms") or {}
        acc = c.get("accuracy") or {}
        budget = c.get("budget") or {}
        rows.append(
            [
                c["name"],
                _f(c.get("throughput_per_s"), 1),
                _f(lat.get("count"), 0),
                _f(lat.get("p50_ms")),
                _f(lat.get("p90_ms")),
                _f(lat.get("p99_ms")),
                _f(lat.get("p999_ms")),
                _f(lat.get("max_ms")),
                f"{lat.get('outliers', '-')}" if lat else "-",
                f"{acc['verdict_agreement'] * 100:.1f}% of {acc['images']}"
                if acc.get("verdict_agreement") is not None
                else "-",
                truth_cell(c),
                ("met" if budget.get("met") else "NOT met: " + "; ".join(budget.get("reasons", []))) if budget else "-",
            ]
        )
    return rows


def truth_cell(config: dict) -> str:
    """Verdicts against the stream's ground truth: accuracy / miss / overkill, FAILED when a goal is missed."""
    acc = config.get("accuracy") or {}
    if acc.get("scored") is None:
        return "-"
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    verdict = "" if (config.get("quality") or {}).get("passed", True) else " FAILED"
    return (
        f"acc {pct(acc.get('accuracy'))} miss {pct(acc.get('miss_rate'))} overkill {pct(acc.get('overkill_rate'))}"
        f" of {acc['scored']}{_replays(acc)}{verdict}"
    )


def _replays(acc: dict) -> str:
    """How the scored parts relate to the verdicts received: parts replayed several times
    count once (benchmarks/loop_harness.py score_replayed)."""
    verdicts = acc.get("verdicts")
    if not verdicts or verdicts == acc.get("scored"):
        return ""
    disagreeing = acc.get("replays_disagreeing") or 0
    differing = f", {disagreeing} part{'' if disagreeing == 1 else 's'} judged differently" if disagreeing else ""
    return f" parts ({verdicts} verdicts{differing})"


def render_markdown(result: dict, plots: dict[str, str]) -> str:
    """The report: settings, the latency table, stages, comparisons, environment, plots."""
    env = result.get("environment", {})
    configs = result.get("configurations", [])
    out = [
        f"# eiad bench {result.get('kind', '')}",
        "",
        f"Command: `{result.get('command', '')}`  ",
        f"Run at {result.get('created_at', '')} (UTC).",
        "",
    ]
    out += [
        "## Machine",
        "",
        f"- CPU: {env.get('cpu')} ({env.get('cpu_affinity') or env.get('cpu_count')} cores usable, "
        f"load {_f(env.get('load_avg_1m'))} at start), {env.get('memory_gb')} GB RAM",
        f"- GPU: {', '.join(env.get('gpu') or []) or 'none'}",
        f"- {env.get('system')} {env.get('machine')}; "
        + ", ".join(f"{k} {v}" for k, v in sorted((env.get("versions") or {}).items())),
        "",
    ]
    settings = result.get("settings", {})
    if settings:
        out += ["## Settings", ""] + [f"- {k}: `{v}`" for k, v in settings.items()] + [""]
    if configs:
        first = next((c.get("latency_ms") for c in configs if c.get("latency_ms")), {}) or {}
        out += [
            "## Latency and throughput",
            "",
            f"Latency per call/frame in ms; percentiles by numpy '{first.get('method', 'linear')}'; outliers: samples "
            "above "
            f"{first.get('outlier_factor', 3)} x p50 (counted, not removed). Throughput in items (images or verdicts) "
            "per second.",
            "",
        ]
        out += _table(
            [
                "configuration",
                "items/s",
                "n",
                "p50",
                "p90",
                "p99",
                "p99.9",
                "max",
                "outliers",
                "agreement",
                "verdicts vs truth",
                "budget",
            ],
            _latency_rows(configs),
        )
        out.append("")
    staged = [c for c in configs if c.get("stages_ms")]
    if staged:
        out += ["## Where the time goes (p50 / p99 ms per stage)", ""]
        stages = [s for s in STAGE_ORDER if any(s in c["stages_ms"] for c in staged)]
        rows = [
            [c["name"]]
            + [
                f"{_f(c['stages_ms'][s]['p50_ms'])} / {_f(c['stages_ms'][s]['p99_ms'])}" if s in c["stages_ms"] else "-"
                for s in stages
            ]
            for c in staged
        ]
        out += _table(["configuration", *stages], rows) + [""]
        drops = [(c["name"], c.get("drops")) for c in staged if c.get("drops") is not None]
        if drops:
            out += ["Dropped or lost frames: " + ", ".join(f"{n}: {d}" for n, d in drops), ""]
        out += cpu_markdown(staged)
    out += runs_markdown(result)
    comparisons = result.get("comparisons", [])
    if comparisons:
        out += ["## Ratios", ""]
        rows = [
            [
                c["name"],
                c.get("metric", ""),
                _f(c.get("ratio"), 3),
                c.get("goal", "-"),
                {True: "yes", False: "no"}.get(c.get("goal_met"), "-"),
            ]
            for c in comparisons
        ]
        out += _table(["comparison", "metric", "ratio / value", "goal", "goal met"], rows) + [""]
    if result.get("sweep"):
        rows = [
            [str(r.get(k)) for k in ("artifact", "resolution", "precision", "backend", "batch", "cameras")]
            + [
                _f(r.get("max_fps_per_camera"), 1),
                _f(r.get("p99_ms")),
                sweep_limit(r),
                truth_cell(
                    {"accuracy": r.get("accuracy"), "quality": {"passed": r.get("quality_passed") is not False}}
                ),
            ]
            for r in result["sweep"]
        ]
        out += (
            ["## Highest sustainable fps per camera", ""]
            + _table(
                [
                    "artifact",
                    "resolution",
                    "precision",
                    "backend",
                    "batch",
                    "cameras",
                    "max fps/camera",
                    "p99 ms there",
                    "what stops a higher rate",
                    "verdicts vs truth",
                ],
                rows,
            )
            + [""]
        )
    if result.get("explanations"):
        out += render_explanations(result["explanations"])
    notes = result.get("notes", []) + [f"{c['name']}: {n}" for c in configs for n in c.get("notes", [])]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    if plots:
        out += ["## Plots", ""] + [f"![{name}]({file})" for name, file in plots.items()] + [""]
    return "\n".join(out)


def sweep_limit(row: dict) -> str:
    """Why a sweep point cannot go higher: the lowest failing probe above the best rate and
    its reasons; when nothing passed, that is the lowest probe (so 0 fps explains itself)."""
    best = row.get("max_fps_per_camera") or 0.0
    failing = sorted((p for p in row.get("probes", []) if not p.get("met") and p["fps"] > best), key=lambda p: p["fps"])
    if not failing:
        return "the search's upper end (--fps-max)" if best else "-"
    probe = failing[0]
    return f"at {probe['fps']:.1f} fps: " + "; ".join(probe.get("reasons") or ["budget not met"])


def _summary_row(name: str, summary: dict | None) -> list[str]:
    summary = summary or {}
    return (
        [name]
        + [_f(summary.get(k)) if summary else "-" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")]
        + [_f(summary.get("count"), 0)]
    )


def _tps(tps: dict) -> str:
    return (
        f"p50 {_f(tps.get('p50'), 1)} per explanation, {_f(tps.get('overall'), 1)} overall (tokens / generation time), "
        f"{_f(tps.get('decode'), 1)} decoding only (prefill left out)"
    )


def render_explanations(section: dict) -> list[str]:
    """The explanation section of `eiad bench line` (benchmarks/explain_bench.py's dict)."""
    out = ["## Explanations (language model, behind the verdict)", ""]
    if not section.get("measured"):
        return out + [section.get("reason", "not measured"), ""]
    settings, counts, alone = section.get("settings", {}), section.get("counts", {}), section.get("alone") or {}
    out += ["Settings: " + ", ".join(f"{k} `{v}`" for k, v in settings.items()), ""]
    out += [
        "Parts: "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
        + f"; backlog drained {_f(section.get('drain_after_loop_s'), 1)} s after the cameras stopped.",
        "",
    ]
    rows = [
        _summary_row("capture -> explanation received", section.get("latency_ms")),
        _summary_row("waiting in the backlog", section.get("backlog_ms")),
        _summary_row("generation (prompt + decoding)", section.get("generation_ms")),
        _summary_row("of which prefill (prompt)", section.get("prefill_ms")),
        _summary_row("explanation stored -> received", section.get("publish_ms")),
    ]
    if alone.get("measured"):
        rows += [
            _summary_row("explainer alone: submit -> explanation", alone.get("latency_ms")),
            _summary_row("explainer alone: generation", alone.get("generation_ms")),
            _summary_row("explainer alone: of which prefill", alone.get("prefill_ms")),
        ]
    out += _table(["ms", "p50", "p90", "p99", "max", "n"], rows) + [""]
    tokens, tps, alone_tps = section.get("tokens", {}), section.get("tokens_per_s", {}), alone.get("tokens_per_s", {})
    out += [
        f"Tokens per explanation: mean {_f(tokens.get('mean'), 1)} (min {_f(tokens.get('min'))}, max "
        f"{_f(tokens.get('max'))}). "
        f"Tokens/s beside the loop: {_tps(tps)}; explainer alone: "
        + (f"{_tps(alone_tps)}." if alone.get("measured") else f"not measured ({alone.get('reason', '-')})."),
        "",
    ]
    words, share = section.get("words") or {}, section.get("consistent_share")
    out += [
        f"Words per explanation: p50 {_f(words.get('p50_ms'), 0)} (max {_f(words.get('max_ms'), 0)}); "
        f"consistent with the verdict and mask it explains (the station's check): "
        + ("-" if share is None else f"{100 * share:.1f} %")
        + ".",
        "",
    ]
    out += [f"- {n}" for n in section.get("notes", [])] + [""]
    return out


def runs_markdown(result: dict) -> list[str]:
    """`bench line --runs N` (benchmarks/line_runs.py): one row per run and the worst against the goals."""
    runs = result.get("runs")
    if not runs:
        return []
    columns = [
        "run",
        "paced_p50_ms",
        "paced_p99_ms",
        "bare_p99_ms",
        "added_p99_ms",
        "bare_per_s",
        "saturated_per_s",
        "throughput_ratio",
        "dropped_or_lost",
        "cpu_ok_ms",
        "cpu_ng_ms",
    ]
    worst, met, goals = runs["worst"], runs["goals_met"], runs["goals"]
    lines = [
        f"## {runs['count']} consecutive runs (judged on the worst)",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(_run_cell(row[c]) for c in columns) + " |" for row in runs["rows"]]
    lines += [
        "",
        f"- worst saturated / bare throughput: {worst['throughput_ratio']:.3f} (goal >= {goals['throughput_ratio']}): "
        + _run_met(met["throughput_ratio"]),
        f"- worst paced p99 - bare p99: {worst['added_p99_ms']:.2f} ms (goal <= {goals['added_p99_ms']} ms): "
        + _run_met(met["added_p99_ms"]),
        f"- most dropped or lost frames in a run: {worst['dropped_or_lost']} (goal 0): "
        + _run_met(met["dropped_or_lost"]),
        f"- worst CPU per part outside the model: OK {_run_cell(worst['cpu_ok_ms'])} ms, "
        f"NG {_run_cell(worst['cpu_ng_ms'])} ms",
    ]
    explainer = runs.get("explainer")
    if explainer:
        lines += [
            f"- verdicts with the explainer vs without, all {explainer['runs']} runs pooled "
            f"({explainer['verdicts_with']} / {explainer['verdicts_without']} verdicts): p50 "
            f"{explainer['p50_with_ms']:.2f} / {explainer['p50_without_ms']:.2f} ms, p99 "
            f"{explainer['p99_with_ms']:.2f} / {explainer['p99_without_ms']:.2f} ms, added p99 "
            f"{explainer['added_p99_ms']:.2f} ms (goal <= {explainer['goal_ms']} ms): "
            + _run_met(explainer["goal_met"]),
            "- the same difference run by run (a few hundred verdicts each, so one spike decides it): "
            + ", ".join(f"{v:.2f}" for v in explainer["per_run_added_p99_ms"])
            + " ms",
        ]
    return lines + [""]


def _run_cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _run_met(met: bool) -> str:
    return "met" if met else "MISSED"
