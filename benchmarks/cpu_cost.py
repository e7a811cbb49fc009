"""CPU time per frame outside the model, by stage: what `bench line` reports beside latency.

Two sources, both CPU time (not wall time: a stage waiting for the GIL or a core costs
nothing here, it shows in the latency tables instead):

- in line, per frame: the pipeline stamps each result's `cpu_ns` with its own threads'
  thread time per stage (preprocess, the model's share of the calling thread, verdict,
  each sink's `handle`). Reported as p50 over OK parts and over NG parts.
- in the background, per run: the threads that work for many frames at once (MQTT
  dispatcher, paho's network loop, outbox checkpoints, the operator page's writer, ...),
  read from /proc/self/task/<id>/stat before and after the loop (Linux; 10 ms ticks,
  so a run of a few hundred frames is needed) and divided by the frames. Threads that
  start and end inside the run (camera readers: stand-ins in the bench) are not counted;
  the bench's own subscriber (the PLC stand-in) is left out by name.

Goal (from the pipelined-station work): <= 0.5 ms p50 for an OK part and <= 1.5 ms for an
NG part with its mask, in line plus background.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

GOALS_MS = {"OK": 0.5, "NG": 1.5}
_MODEL = "inference"


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) so far per live Python thread, by thread name; {} off Linux."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return {}
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state is field 3, utime 14, stime 15
        out[thread.name] = out.get(thread.name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def process_cpu_s(pid: int | None) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def cpu_section(
    per_frame: list[tuple[str, dict[str, int]]],
    before: dict[str, float],
    after: dict[str, float],
    frames: int,
    leave_out: tuple[str, ...] = (),
) -> dict:
    """The report's section: `per_frame` is (verdict, cpu_ns) per result; `before`/`after`
    are `thread_cpu_s()` around the loop; threads whose name starts with any of
    `leave_out` (the bench's own clients) are not the station's and are left out."""
    stages = sorted({stage for _, cpu in per_frame for stage in cpu if stage != _MODEL})
    inline: dict[str, dict[str, float | None]] = {}
    totals: dict[str, float | None] = {}
    for verdict in ("OK", "NG"):
        rows = [cpu for v, cpu in per_frame if v == verdict]
        for stage in stages:
            values = [cpu.get(stage, 0) / 1e6 for cpu in rows]
            inline.setdefault(stage, {})[verdict] = _p50(values)
        totals[verdict] = _p50([sum(ns for s, ns in cpu.items() if s != _MODEL) / 1e6 for cpu in rows])
    background = {
        name: round((after[name] - before.get(name, 0.0)) * 1000.0 / frames, 4)
        for name in sorted(after)
        if frames > 0 and not name.startswith(leave_out) and name != threading.main_thread().name
    }
    background = {name: ms for name, ms in background.items() if ms > 0}
    background_ms = round(sum(background.values()), 4)
    per_part = {v: None if t is None else round(t + background_ms, 4) for v, t in totals.items()}
    return {
        "inline_p50_ms": inline,
        "inline_total_p50_ms": totals,
        "background_ms_per_frame": background,
        "background_total_ms_per_frame": background_ms,
        "per_part_ms": per_part,
        "goals_ms": GOALS_MS,
        "goals_met": {v: (None if ms is None else ms <= GOALS_MS[v]) for v, ms in per_part.items()},
        "frames": frames,
        "model_p50_ms": _p50([cpu.get(_MODEL, 0) / 1e6 for _, cpu in per_frame]),
    }


def cpu_markdown(configs: list[dict]) -> list[str]:
    """'CPU per frame outside the model' table for every configuration that has a section."""
    costed = [c for c in configs if c.get("cpu")]
    if not costed:
        return []
    out = [
        "## CPU per frame outside the model (ms of CPU time; p50 OK / p50 NG)",
        "",
        "In line: the station's loop threads per frame; background: its other threads' CPU over the run "
        f"divided by the frames. Goal: OK <= {GOALS_MS['OK']} ms, NG <= {GOALS_MS['NG']} ms.",
        "",
    ]
    for c in costed:
        cpu = c["cpu"]
        rows = [[stage, _f(v.get("OK")), _f(v.get("NG"))] for stage, v in cpu["inline_p50_ms"].items()]
        rows += [[f"background: {name}", _f(ms), _f(ms)] for name, ms in cpu["background_ms_per_frame"].items()]
        rows.append(["**per part**", _f(cpu["per_part_ms"]["OK"]), _f(cpu["per_part_ms"]["NG"])])
        met = cpu["goals_met"]
        out += [
            f"{c['name']} ({cpu['frames']} frames; the model's own share of the loop thread p50 "
            f"{_f(cpu['model_p50_ms'])} ms): goal OK {_yes(met['OK'])}, NG {_yes(met['NG'])}",
            "",
            "| stage | OK | NG |",
            "|---|---|---|",
            *[f"| {' | '.join(r)} |" for r in rows],
            "",
        ]
    return out


def _p50(values: list[float]) -> float | None:
    return round(float(np.percentile(values, 50)), 4) if values else None


def _f(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _yes(met) -> str:
    return {True: "met", False: "MISSED", None: "-"}[met]
