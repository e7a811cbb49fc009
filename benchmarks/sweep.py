"""`eiad bench sweep`: the highest sustainable fps per camera over a grid of settings.

Grid: artifact (each carries a resolution and precision) x backend (an ONNX Runtime
provider chain, or `station`: the station's own configured runner, e.g. torch on a CUDA
GPU) x max_batch x cameras. At each point a ladder of doubling rates, then a bisection, over fps
per camera runs short probe loops (`probe_s` each, at least 40 frames per camera); a probe
passes when the budget is met (p99 <= budget, verdict rate >= fps x cameras, nothing
dropped or lost). The sustainable rate is the highest one with every lower rate tried
passing (see highest_sustainable); a noisy machine can make a probe fail, so the figure
is a lower bound, and the report keeps each point's probes.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.backends import ORT_CHAINS
from benchmarks.line_bench import loop_config, run_loop
from benchmarks.line_load import LineLoad, load_frames, load_truth
from benchmarks.report import new_result
from eiad.errors import ConfigError

log = logging.getLogger(__name__)

STATION_BACKEND = "station"  # the runner station.yaml configures (any kind), built as the station builds it


@dataclass(frozen=True)
class SweepGrid:
    artifacts: list[Path] = field(default_factory=list)  # empty: the config's artifact
    backends: list[str] = field(default_factory=lambda: ["ort-cpu"])
    batches: list[int] = field(default_factory=lambda: [1])
    cameras: list[int] = field(default_factory=lambda: [1, 2, 4])
    budget_ms: float = 15.0
    fps_min: float = 5.0
    fps_max: float = 240.0
    probe_s: float = 3.0
    steps: int = 6


def highest_sustainable(
    probe, fps_min: float, fps_max: float, steps: int
) -> tuple[float, list[tuple[float, bool, dict]]]:
    """Highest fps where `probe(fps) -> (passed, config)` passes and every lower rate tried
    passed too; 0 when the lowest rate fails.

    A ladder of doubling rates from fps_min stops at its first failing rung, whatever the
    reason (latency, throughput, drops): a rate is sustainable only if the line can also
    run slower. A bisection then refines between the highest passing rung and that first
    failing one. Every probe is run once and judged by the same budget, pass or fail: no
    probe gets a second chance that the others did not get.
    """
    history: list[tuple[float, bool, dict]] = []

    def run(fps: float) -> bool:
        passed, config = probe(fps)
        history.append((fps, passed, config))
        return passed

    ladder, fps = [], fps_min
    while fps < fps_max:
        ladder.append(fps)
        fps *= 2
    ladder.append(fps_max)
    best, failed_at = 0.0, None
    for fps in ladder:
        if not run(fps):
            failed_at = fps
            break
        best = fps
    if best == 0.0 or failed_at is None:
        return best, history
    low, high = best, failed_at
    for _ in range(steps):
        mid = (low + high) / 2
        low, high = (mid, high) if run(mid) else (low, mid)
    return low, history


def runner_settings(config) -> dict:
    """The station's own ONNX Runtime settings (threads, engine cache) for every grid point:
    only the provider chain is the sweep's. Ignoring them measured another loop than the
    line's (e.g. ORT's default one thread per core, spinning against the camera and MQTT
    threads, where the station pins `intra_op_threads`)."""
    runner = config.runner
    if runner.kind != "onnxruntime":
        log.warning("the station runs a %s runner: the sweep's ort-* backends use ONNX Runtime's defaults", runner.kind)
        return {}
    cache = config.path(runner.engine_cache_dir) if runner.engine_cache_dir else None
    return {"intra_op_threads": runner.intra_op_threads, "engine_cache_dir": cache}


def _runner(result, base, artifact: Path, manifest, backend: str, station_runner: dict):
    """The grid point's runner, or None with a note saying why it cannot be measured here."""
    from edge.runners.factory import build_runner
    from edge.runners.onnxruntime_runner import OnnxRuntimeRunner

    try:
        if backend == STATION_BACKEND:
            runner = build_runner(base.runner, artifact, manifest, base.path)
            result["settings"].setdefault("station_runner_provider", runner.provider)
            return runner
        runner = OnnxRuntimeRunner(artifact, providers=ORT_CHAINS[backend], manifest=manifest, **station_runner)
    except Exception as error:  # a backend this machine lacks: say so, go on with the grid
        result["notes"].append(f"{artifact.name} {backend}: not measured ({error})")
        return None
    if runner.provider != ORT_CHAINS[backend][0]:
        result["notes"].append(f"{artifact.name} {backend}: not measured (runs on {runner.provider})")
        runner.close()
        return None
    return runner


def run_sweep(config_path: Path, grid: SweepGrid, broker: str = "private") -> dict:
    from benchmarks.broker import broker_for_run
    from edge.config import load_station_config
    from eiad.manifest import load_manifest

    base = load_station_config(config_path)
    artifacts = [Path(a) for a in grid.artifacts] or [base.path(base.artifact)]
    unknown = [b for b in grid.backends if b not in ORT_CHAINS and b != STATION_BACKEND]
    if unknown:
        raise ConfigError(
            f"sweep backends {unknown} are unknown; choose from {', '.join([*ORT_CHAINS, STATION_BACKEND])}"
        )
    station_runner = runner_settings(base)
    result = new_result(
        "sweep",
        {
            "config": str(config_path),
            "artifacts": [str(a) for a in artifacts],
            **{k: v for k, v in grid.__dict__.items() if k != "artifacts"},
            "runner": {
                "kind": "onnxruntime",
                **{k: str(v) if isinstance(v, Path) else v for k, v in station_runner.items()},
            },
        },
    )
    result["sweep"] = []
    with ExitStack() as stack:
        host, port = broker_for_run(stack, broker, base.mqtt, config_path)
        for artifact in artifacts:
            manifest = load_manifest(artifact)
            frames, _ = load_frames(base, manifest, None)
            truth = load_truth(base, None, len(frames))
            for backend in grid.backends:
                runner = _runner(result, base, artifact, manifest, backend, station_runner)
                if runner is None:
                    continue
                try:
                    for batch in grid.batches:
                        config = base.model_copy(
                            update={"batching": base.batching.model_copy(update={"max_batch": batch})}
                        )
                        config._base_dir = base._base_dir
                        for cameras in grid.cameras:
                            _point(
                                result,
                                config,
                                runner,
                                (frames, truth),
                                manifest,
                                artifact,
                                backend,
                                batch,
                                cameras,
                                grid,
                                host,
                                port,
                            )
                finally:
                    runner.close()
    if not result["sweep"]:
        raise ConfigError("no grid point could be measured: " + "; ".join(result["notes"]))
    return result


def _point(
    result, config, runner, replay, manifest, artifact, backend, batch, cameras, grid: SweepGrid, host, port
) -> None:
    frames, truth = replay
    label = (
        f"{artifact.name} {manifest.input.width}x{manifest.input.height} {manifest.precision} {backend} b{batch} "
        f"{cameras}cam"
    )

    def probe(fps: float):
        # >= 40 frames per camera: a p99 over fewer samples is the maximum of a handful
        load = LineLoad(fps, cameras, max(grid.probe_s, 40.0 / fps), grid.budget_ms)
        run = run_loop(config, runner, frames, load, host, port, truth=truth)
        cfg = loop_config(f"{label} @{fps:.1f}fps", run, load, fps)
        log.info(
            "%s @ %.1f fps: %s", label, fps, "met" if cfg["budget"]["met"] else "; ".join(cfg["budget"]["reasons"])
        )
        return cfg["budget"]["met"], cfg

    best, history = highest_sustainable(probe, grid.fps_min, grid.fps_max, grid.steps)
    at_best = next((c for f, ok, c in history if ok and f == best), None)
    if at_best is not None:
        at_best = {**at_best, "name": label, "series": f"{artifact.name} {backend} b{batch}", "group": "sweep"}
        result["configurations"].append(at_best)
    result["sweep"].append(
        {
            "artifact": artifact.name,
            "resolution": f"{manifest.input.width}x{manifest.input.height}",
            "precision": manifest.precision,
            "backend": backend,
            "batch": batch,
            "cameras": cameras,
            "max_fps_per_camera": best,
            "p99_ms": at_best["latency_ms"]["p99_ms"] if at_best else None,
            # the verdicts' quality at the best rate (None: no ground truth);
            # a failed one fails the row, whatever its speed
            "accuracy": at_best.get("accuracy") if at_best else None,
            "quality_passed": at_best["quality"]["passed"] if at_best and "quality" in at_best else None,
            "probes": [
                {"fps": f, "met": ok, "p99_ms": c["latency_ms"]["p99_ms"], "reasons": c["budget"]["reasons"]}
                for f, ok, c in history
            ],
        }
    )
