"""`eiad bench line`: the whole station loop, capture -> verdict at the PLC, under load.

One run measures, on the same artifact and frames:
1. the paced loop: N cameras at the target fps for `duration_s` (the budget question);
2. the bare runner: `runner.run` in a tight loop at the station's batch size;
3. the saturated loop: the same cameras unpaced (triggered policy, queues block), to get
   the loop's highest throughput; with (2) this gives the loop's overhead criterion: the loop keeps
   >= 95 % of the bare throughput and adds <= 2 ms at p99 over bare inference;
4. the naive baseline (benchmarks/baselines/naive_loop.py) at the same load;
5. explanations, when the station enables its explainer and the artifact has llm/: the
   paced run (1) runs it behind the loop (benchmarks/explain_bench.py), the explainer alone
   is timed on a few of that run's NG parts, and (with the comparisons of 2-3) the paced
   load runs once more without the explainer, so the verdict cost of sharing the CPU shows.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from benchmarks.cpu_cost import cpu_section, thread_cpu_s
from benchmarks.explain_bench import ExplainPlan, ExplainProbe, explain_alone, plan_explanations
from benchmarks.line_load import LineLoad, load_frames, load_truth
from benchmarks.loop_harness import BENCH_CLIENT_THREADS, LoopRun, PacedSource, TimingSink, VerdictListener, collect
from benchmarks.report import new_result
from benchmarks.stats import cdf_points, check_budget, ratio, summarize_ms, summarize_ns
from benchmarks.timing import time_calls
from eiad.errors import ConfigError
from eiad.line_goals import format_goals, judge

log = logging.getLogger(__name__)

BARE_THROUGHPUT_GOAL = 0.95
ADDED_P99_GOAL_MS = 2.0


def _settings(config, host: str, port: int, workdir: Path):
    from edge.sinks.mqtt.config import MqttSettings

    base = config.mqtt or MqttSettings(line=config.line_id, station=config.station_id)
    mqtt = base.model_copy(update={"host": host, "port": port, "client_id": f"eiad-bench-{config.station_id}"})
    outbox = config.outbox.model_copy(update={"path": workdir / "outbox.sqlite3"})
    return mqtt, outbox


def run_loop(
    config,
    runner,
    frames: list[np.ndarray],
    load: LineLoad,
    host: str,
    port: int,
    fps: float | None = None,
    duration_s: float | None = None,
    explain: ExplainPlan | None = None,
    truth: list[dict | None] | None = None,
    extra_sinks: dict | None = None,
) -> LoopRun:
    """One loop run with `load.cameras` paced cameras; the runner is reused across runs.
    With `explain` (a plan with a config), the station's explainer runs behind the loop and
    the run's `explanations` holds benchmarks/explain_bench.py's section. With `truth` (one
    record per frame), the verdicts the subscriber received are scored against it.
    `extra_sinks` (e.g. the operator page's feed) follow the MQTT sink, as in edge/app.py."""
    from edge.pipeline import Pipeline
    from edge.sinks.log import LogSink
    from edge.sinks.mqtt.outbox.store import Outbox
    from edge.sinks.mqtt.sink import MqttSink
    from edge.sources.watchdog import SourceSet

    fps = load.fps_per_camera if fps is None else fps
    duration_s = load.duration_s if duration_s is None else duration_s
    explaining = explain is not None and explain.config is not None
    with tempfile.TemporaryDirectory(prefix="eiad-bench-loop-") as tmp, ExitStack() as stack:
        mqtt_settings, outbox_settings = _settings(config, host, port, Path(tmp))
        sink = TimingSink(MqttSink(mqtt_settings, Outbox(outbox_settings)), keep_samples=8 if explaining else 0)
        stack.callback(sink.close)
        listener = VerdictListener(host, port, sink.inner.topics.of("verdict"), keep_messages=truth is not None)
        stack.callback(listener.close)
        if not listener.ready.wait(10.0):
            raise ConfigError(f"could not subscribe at the broker {host}:{port} within 10 s")
        sinks = {"log": LogSink(), "mqtt": sink, **(extra_sinks or {})}
        probe = None
        if explaining:  # last in the sink order, as edge/app.py wires it: the verdict is stored first
            probe = ExplainProbe(config, explain, sinks, sink, host, port, runner.manifest)
            stack.callback(probe.close)  # runs before the sink closes (ExitStack is last in, first out)
            sinks["explainer"] = probe.feed
        sources = SourceSet()
        cams = []
        for i in range(load.cameras):
            # Cameras are spread over one frame period, as unsynchronised cameras are.
            cam = PacedSource(f"cam{i}", frames, fps, duration_s, phase_s=(i / load.cameras / fps) if fps > 0 else 0.0)
            cams.append(cam)
            sources.add(
                cam.source_id,
                lambda cam=cam: cam,
                load.policy,
                load.queue_capacity,
                500.0 if load.policy == "latest" else None,
                stall_timeout_s=max(10.0, duration_s),
            )
        pipeline = Pipeline(
            config.station_id,
            sources,
            runner,
            sinks,
            config.thresholds,
            max_batch=config.batching.max_batch,
            max_wait_ms=config.batching.max_wait_ms,
            wrong_size=config.frames.wrong_size,
        )
        with _quiet(saturated=fps == 0):
            cpu_before = thread_cpu_s()
            summary = pipeline.run(threading.Event())
            loop_end_ns = time.monotonic_ns()
            cpu_after = thread_cpu_s()
            missing = listener.wait_for(set(sink.stamps), timeout_s=10.0)
            explanations = probe.finish(loop_end_ns) if probe is not None else None
        if missing:
            log.warning("%d verdicts not received within 10 s of the end", missing)
        dropped = sum(sources.queues.drops.values())
        run = collect(sink, listener, dropped, sum(c.late for c in cams), summary.frames + dropped, truth)
        run.explanations = explanations
        run.samples = list(sink.samples)
        per_frame = [(stamps["_verdict"], stamps["_cpu"]) for stamps in sink.stamps.values()]
        run.cpu = cpu_section(per_frame, cpu_before, cpu_after, summary.frames, leave_out=(BENCH_CLIENT_THREADS,))
        return run


@contextmanager
def _quiet(saturated: bool):
    """One INFO line per NG part and per explanation, and (saturated runs) one warning per
    full queue, would flood the terminal; the counts are in the report instead."""
    quiet = {"edge.app": logging.WARNING, "edge.sources.queues": logging.ERROR if saturated else logging.WARNING}
    levels = {name: logging.getLogger(name).level for name in quiet}
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def bare_runner(runner, frames: list[np.ndarray], batch: int, duration_s: float) -> dict:
    stacked = np.stack([frames[i % len(frames)] for i in range(batch)])
    timed = time_calls(lambda: runner.run(stacked), warmup=10, min_duration_s=duration_s)
    return {
        "name": f"bare runner b{batch}",
        "group": "bare",
        "batch": batch,
        "latency_ms": summarize_ns(timed.samples_ns).to_dict(),
        "cdf_ms": cdf_points(timed.samples_ms),
        "throughput_per_s": timed.throughput(batch),
        "notes": [],
    }


def loop_config(name: str, run: LoopRun, load: LineLoad, fps: float, group: str = "loop") -> dict:
    total = summarize_ms(run.stages_ms["total"])
    config = {
        "name": name,
        "group": group,
        "series": group,
        "cameras": load.cameras,
        "fps_per_camera": fps,
        "latency_ms": total.to_dict(),
        "cdf_ms": cdf_points(run.stages_ms["total"]),
        "throughput_per_s": run.throughput_per_s,
        "stages_ms": {
            s: {"p50_ms": summarize_ms(v).p50_ms, "p99_ms": summarize_ms(v).p99_ms} for s, v in run.stages_ms.items()
        },
        "drops": run.dropped + run.lost,
        "frames_captured": run.frames_captured,
        "verdicts_received": run.verdicts_received,
        "lost": run.lost,
        "late_frames": run.late,
        "cpu": run.cpu,
        "duplicates": run.duplicates,
        "verdicts": run.verdicts,
        "notes": [],
    }
    if fps > 0:
        config["budget"] = check_budget(
            total.p99_ms, run.throughput_per_s, load.budget_ms, fps, load.cameras, run.dropped + run.lost
        ).to_dict()
    if run.accuracy is not None:
        config["accuracy"] = run.accuracy
        config["quality"] = judge(run.accuracy)
        if not config["quality"]["passed"]:
            config["notes"].append(
                "FAILED: the verdicts miss the line's quality goals ("
                + format_goals(config["quality"])
                + "); its speed does not count"
            )
    if run.late:
        config["notes"].append(
            f"{run.late} frames left their camera more than one period late (the loop held the cameras back)"
        )
    return config


def overhead_comparisons(bare: dict, saturated: dict, paced: dict, paced_label: str = "paced loop") -> list[dict]:
    kept = ratio(saturated["throughput_per_s"], bare["throughput_per_s"])
    added = paced["latency_ms"]["p99_ms"] - bare["latency_ms"]["p99_ms"]
    return [
        {
            "name": "saturated loop / bare runner",
            "metric": "throughput ratio",
            "ratio": kept,
            "goal": f">= {BARE_THROUGHPUT_GOAL}",
            "goal_met": kept >= BARE_THROUGHPUT_GOAL,
        },
        {
            "name": f"{paced_label} p99 - bare runner p99",
            "metric": "added ms",
            "ratio": added,
            "goal": f"<= {ADDED_P99_GOAL_MS} ms",
            "goal_met": added <= ADDED_P99_GOAL_MS,
        },
    ]


def bench_line(
    config_path: Path,
    load: LineLoad,
    broker: str = "private",
    bare: bool = True,
    baseline: bool = True,
    video: Path | None = None,
    explainer: str = "config",
    explain_mode: str | None = None,
    raw_latencies: bool = False,
) -> dict:
    """Every measurement of the module docstring; `explainer` 'config' (measure explanations
    when the station enables them) or 'off'; `explain_mode` overrides explainer.mode.
    `raw_latencies`: also return the paced loop's per-verdict latencies with and without the
    explainer (`raw_latencies_ms`, numpy arrays: for `--runs`, which pools them and drops them)."""
    from benchmarks.broker import broker_for_run
    from edge.config import load_station_config
    from edge.runners.factory import build_runner
    from eiad.manifest import load_manifest

    config = load_station_config(config_path)
    artifact = config.path(config.artifact)
    manifest = load_manifest(artifact)
    frames, frames_source = load_frames(config, manifest, video)
    truth = load_truth(config, video, len(frames))
    settings = {
        "config": str(config_path),
        "artifact": str(artifact),
        "model_id": manifest.model_id,
        "cameras": load.cameras,
        "fps_per_camera": load.fps_per_camera,
        "duration_s": load.duration_s,
        "budget_ms": load.budget_ms,
        "camera_policy": load.policy,
        "max_batch": config.batching.max_batch,
        "max_wait_ms": config.batching.max_wait_ms,
        "runner": config.runner.model_dump(mode="json"),
        "frames": frames_source,
        "broker": broker,
    }
    plan = plan_explanations(config, config_path, manifest, explainer, explain_mode)
    result = new_result("line", settings)
    with ExitStack() as stack:
        host, port = broker_for_run(stack, broker, config.mqtt, config_path)
        result["settings"]["broker_address"] = f"{host}:{port}"
        runner = build_runner(config.runner, artifact, manifest, config.path)
        stack.callback(runner.close)
        result["settings"]["runner_provider"] = runner.provider
        paced_run = run_loop(config, runner, frames, load, host, port, explain=plan, truth=truth)
        paced = loop_config(f"loop {load.cameras}x{load.fps_per_camera:g}fps", paced_run, load, load.fps_per_camera)
        result["configurations"].append(paced)
        result["explanations"] = _explanations(plan, paced_run, artifact)
        # The loop's own overhead and the naive loop, which explains nothing, are
        # compared with the paced loop without the explainer when there is one: like for like.
        loop_only, loop_label = paced, "paced loop"
        if bare and plan.config is not None:  # the same paced load with no explainer behind it
            quiet_run = run_loop(config, runner, frames, load, host, port, truth=truth)
            if raw_latencies:
                result["raw_latencies_ms"] = {
                    "with_explainer": paced_run.stages_ms["total"],
                    "without_explainer": quiet_run.stages_ms["total"],
                }
            quiet = loop_config(
                f"loop {load.cameras}x{load.fps_per_camera:g}fps without explainer",
                quiet_run,
                load,
                load.fps_per_camera,
                group="loop-no-explainer",
            )
            result["configurations"].append(quiet)
            result["comparisons"].append(
                {
                    "name": "paced loop p99 with explainer - without",
                    "metric": "added ms",
                    "ratio": paced["latency_ms"]["p99_ms"] - quiet["latency_ms"]["p99_ms"],
                    "goal": "-",
                }
            )
            loop_only, loop_label = quiet, "paced loop without explainer"
        if bare:
            batch = max(1, min(config.batching.max_batch, runner.max_batch or config.batching.max_batch))
            bare_cfg = bare_runner(runner, frames, batch, min(load.duration_s, 10.0))
            sat_load = LineLoad(
                0.0, load.cameras, min(load.duration_s, 10.0), load.budget_ms, "block", load.queue_capacity
            )
            saturated = loop_config(
                f"loop {load.cameras} cams saturated",
                run_loop(config, runner, frames, sat_load, host, port, truth=truth),
                sat_load,
                0.0,
                group="saturated",
            )
            result["configurations"] += [bare_cfg, saturated]
            result["comparisons"] += overhead_comparisons(bare_cfg, saturated, loop_only, loop_label)
        if baseline:
            from benchmarks.baselines.naive_loop import bench_naive, naive_comparisons

            naive = bench_naive(artifact, manifest, frames, load, host, port)
            result["configurations"].append(naive)
            station = "station loop" + (" without explainer" if loop_only is not paced else "")
            result["comparisons"] += naive_comparisons(naive, loop_only, station)
    if plan.config is None:
        result["notes"].append(plan.reason)
    if truth is None:
        result["notes"].append("no ground truth beside the replayed frames: verdicts are not scored (speed only)")
    return result


def _explanations(plan: ExplainPlan, paced_run: LoopRun, artifact: Path) -> dict:
    """The paced run's explanation section plus the explainer alone on a few of its NG parts."""
    if plan.config is None:
        return {"measured": False, "reason": plan.reason}
    section = paced_run.explanations
    section["alone"] = explain_alone(artifact, plan.config, paced_run.samples)
    section["notes"] = [
        "explanations share the CPU with the verdict path: the paced loop's verdict figures above were "
        "measured with the explainer running behind it ('without explainer': the same load without it, "
        "unless --no-bare)"
    ]
    return section
