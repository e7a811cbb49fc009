"""`eiad bench`: will this model keep up with my line on this box?

    eiad bench engine ARTIFACT [...]    the engine alone, per backend and batch size
    eiad bench line --config st.yaml    the whole loop: cameras -> verdict at an MQTT subscriber
    eiad bench sweep --config st.yaml   highest sustainable fps per camera over a grid
    eiad bench compare A.json B.json    ratios between two runs

Nothing heavy is imported here: each handler imports its work when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _csv(kind):
    def parse(text: str):
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}: {error}") from None

    return parse


def register(commands) -> None:
    parser = commands.add_parser(
        "bench",
        help="latency and throughput benchmarks",
        description="Latency and throughput benchmarks that answer 'will this model keep up with my line on this "
        "box?'. "
        "Every command writes result.json, report.md and PNG plots into --out.",
    )
    sub = parser.add_subparsers(dest="bench_command", metavar="COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    _engine(sub)
    _line(sub)
    _sweep(sub)
    _compare(sub)


def _common(p, out_default: str) -> None:
    p.add_argument(
        "--out",
        type=Path,
        default=Path(out_default),
        help=f"folder for result.json, report.md and plots (default {out_default})",
    )


def _engine(sub) -> None:
    p = sub.add_parser(
        "engine",
        help="the vision engine alone: latency per call and images/s per backend",
        description="Time the exported vision engine alone (no camera, no MQTT) on every backend this machine has, "
        "and check each backend's verdicts against the reference (torch eager if --torch-checkpoint, else the first "
        "backend). "
        "Backends that cannot run here are listed in the report with the reason.",
    )
    p.add_argument(
        "artifacts",
        type=Path,
        nargs="+",
        metavar="ARTIFACT",
        help="export artifact folder(s) (hold manifest.json); several of one model (e.g. fp32, int8, fp16 from "
        "'eiad export quantize') are named by precision and all checked against the first one's reference",
    )
    p.add_argument(
        "--backends",
        type=_csv(str),
        default=["ort-cpu", "ort-cuda", "ort-trt", "torch", "torch-cuda"],
        help="comma list from ort-cpu, ort-cuda, ort-trt, torch, torch-cuda (default: all; unavailable ones are "
        "reported)",
    )
    p.add_argument("--batch", type=_csv(int), default=[1, 8], help="batch sizes, comma list (default 1,8)")
    p.add_argument(
        "--min-duration-s", type=float, default=5.0, help="time each configuration at least this long (default 5)"
    )
    p.add_argument("--warmup", type=int, default=10, help="untimed calls first (default 10)")
    p.add_argument(
        "--split", type=Path, help="split.json: check verdict agreement on its held-out images (else random frames)"
    )
    p.add_argument(
        "--torch-checkpoint", type=Path, help="training checkpoint of the same model: enables the torch eager reference"
    )
    p.add_argument("--eval-images", type=int, default=32, help="images for the agreement check (default 32)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: ONNX Runtime decides)")
    p.add_argument(
        "--baselines",
        type=_csv(str),
        default=[],
        help="also measure what a user would pick instead, on the same images: 'anomalib' fits anomalib's PatchCore "
        "(random-weight resnet18: no download offline) on --split's OK training images and times its TorchInferencer "
        "and ONNX export; needs --split and the side venv .venv-anomalib (missing: a note in the report, not an error)",
    )
    p.add_argument(
        "--anomalib-python",
        type=Path,
        help="python of the anomalib side venv (default .venv-anomalib/bin/python in the repository)",
    )
    p.add_argument(
        "--anomalib-train-images", type=int, default=64, help="OK training images for anomalib's PatchCore (default 64)"
    )
    p.add_argument(
        "--anomalib-coreset-ratio",
        type=float,
        default=0.1,
        help="PatchCore coreset sampling ratio (default 0.1, anomalib's): the memory bank size, so the cost per image",
    )
    _common(p, "bench_out/engine")
    p.set_defaults(func=_run_engine)


def _line(sub) -> None:
    p = sub.add_parser(
        "line",
        help="the whole loop under N cameras at a target fps, as the PLC sees it",
        description="Run the station loop from a station.yaml under a synthetic camera load (N cameras x fps, "
        "replaying "
        "the config's video if it has one, else synthetic frames) and time every frame from capture to the verdict "
        "received by an MQTT subscriber. Reports per-stage times, drops and whether the latency budget is met, "
        "plus the bare runner on the same artifact and the naive OpenCV+model+paho loop for comparison. "
        "When the config enables explainer: and the artifact has llm/, the paced run also runs the explainer "
        "behind the loop, as the station does, and reports explanation latency (capture -> explanation received), "
        "backlog wait vs generation time, tokens/s and backlog drops separately, plus the explainer alone.",
    )
    p.add_argument("--config", type=Path, required=True, help="station.yaml (artifact, runner, batching, mqtt, outbox)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second per camera (default 30)")
    p.add_argument("--cameras", type=int, default=4, help="cameras (default 4)")
    p.add_argument("--budget-ms", type=float, default=15.0, help="capture -> verdict received p99 budget (default 15)")
    p.add_argument("--duration-s", type=float, default=20.0, help="measured run length (default 20)")
    p.add_argument(
        "--broker",
        choices=["private", "config"],
        default="private",
        help="private (default): start a Mosquitto of our own on a free port for the run; config: use the config's "
        "broker",
    )
    p.add_argument(
        "--no-bare",
        action="store_true",
        help="skip the comparison runs: bare runner and saturated loop (the loop's own overhead), and the paced loop "
        "without the explainer",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the naive OpenCV+model+paho loop")
    p.add_argument(
        "--runs",
        type=int,
        default=1,
        help="repeat the whole bench N times in a row and judge the goals on the worst run (5 for the station's "
        "published figures; the report keeps the last run's tables plus one row per run)",
    )
    p.add_argument(
        "--video", type=Path, help="replay this video's frames instead of the config's source / synthetic frames"
    )
    p.add_argument(
        "--explainer",
        choices=["config", "off"],
        default="config",
        help="config (default): measure explanations when station.yaml enables explainer: (the report says why "
        "when it cannot: no section, disabled, no llm/ in the artifact); off: verdicts only",
    )
    p.add_argument(
        "--explain-mode",
        choices=["NG", "all", "sampled"],
        help="override explainer.mode for the run (e.g. all: explain every part, the heaviest load)",
    )
    _common(p, "bench_out/line")
    p.set_defaults(func=_run_line)


def _sweep(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="highest sustainable fps per camera over a grid of settings",
        description="For each combination of artifact (resolution/precision), backend, batch and camera count, "
        "search the highest fps per camera at which the loop meets the budget (p99, throughput, no drops).",
    )
    p.add_argument(
        "--config",
        type=Path,
        required=True,
        help="station.yaml giving the MQTT/outbox settings and the default artifact",
    )
    p.add_argument(
        "--artifacts",
        type=_csv(Path),
        help="artifact folders to compare (different resolutions/precisions); default: the config's",
    )
    p.add_argument(
        "--backends",
        type=_csv(str),
        default=["ort-cpu"],
        help="ort-cpu, ort-cuda, ort-trt, or station: the runner station.yaml configures, e.g. torch on a CUDA GPU "
        "(default ort-cpu)",
    )
    p.add_argument("--batch", type=_csv(int), default=[1], help="max_batch values (default 1)")
    p.add_argument("--cameras", type=_csv(int), default=[1, 2, 4], help="camera counts (default 1,2,4)")
    p.add_argument("--budget-ms", type=float, default=15.0)
    p.add_argument("--fps-max", type=float, default=240.0, help="upper end of the fps search (default 240)")
    p.add_argument("--probe-s", type=float, default=3.0, help="length of each probe run (default 3)")
    p.add_argument("--steps", type=int, default=6, help="bisection steps per grid point (default 6)")
    p.add_argument("--broker", choices=["private", "config"], default="private")
    _common(p, "bench_out/sweep")
    p.set_defaults(func=_run_sweep)


def _compare(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="ratios between two result.json files (B / A)",
        description="Match configurations by name and print B/A: throughput (> 1: B does more) and p50/p99 latency (< "
        "1: B is faster).",
    )
    p.add_argument("a", type=Path, help="result.json of run A (the baseline)")
    p.add_argument("b", type=Path, help="result.json of run B")
    p.set_defaults(func=_run_compare)


def _finish(result: dict, out: Path) -> int:
    from benchmarks.report import write_report

    written = write_report(result, out)
    print((written["markdown"]).read_text(encoding="utf-8"))
    print(f"\nwritten: {', '.join(str(p) for p in written.values())}")
    return 0


def _run_engine(args) -> int:
    from benchmarks.baselines.anomalib_baseline import AnomalibOptions
    from benchmarks.engine_bench import bench_engine

    anomalib = AnomalibOptions(
        python=args.anomalib_python,
        train_images=args.anomalib_train_images,
        coreset_sampling_ratio=args.anomalib_coreset_ratio,
    )
    result = bench_engine(
        args.artifacts,
        args.backends,
        args.batch,
        args.min_duration_s,
        args.warmup,
        args.split,
        args.torch_checkpoint,
        args.eval_images,
        args.threads,
        baselines=args.baselines,
        anomalib=anomalib,
    )
    return _finish(result, args.out)


def _run_line(args) -> int:
    from benchmarks.line_bench import bench_line
    from benchmarks.line_load import LineLoad

    load = LineLoad(fps_per_camera=args.fps, cameras=args.cameras, duration_s=args.duration_s, budget_ms=args.budget_ms)
    options = dict(
        config_path=args.config,
        load=load,
        broker=args.broker,
        bare=not args.no_bare,
        baseline=not args.no_baseline,
        video=args.video,
        explainer=args.explainer,
        explain_mode=args.explain_mode,
    )
    if args.runs > 1:
        from benchmarks.line_runs import bench_line_runs

        return _finish(bench_line_runs(args.runs, **options), args.out)
    return _finish(bench_line(**options), args.out)


def _run_sweep(args) -> int:
    from benchmarks.sweep import SweepGrid, run_sweep

    grid = SweepGrid(
        artifacts=args.artifacts or [],
        backends=args.backends,
        batches=args.batch,
        cameras=args.cameras,
        budget_ms=args.budget_ms,
        fps_max=args.fps_max,
        probe_s=args.probe_s,
        steps=args.steps,
    )
    result = run_sweep(args.config, grid, broker=args.broker)
    return _finish(result, args.out)


def _run_compare(args) -> int:
    from benchmarks.compare import compare_results, format_comparison
    from benchmarks.report import load_result

    a, b = load_result(args.a), load_result(args.b)
    print(format_comparison(compare_results(a, b), str(args.a), str(args.b)))
    return 0
