"""`eiad edge`: run an inspection station: camera -> verdict + mask over MQTT.

Only argument declarations here; the station code is imported when a command runs, so
`eiad edge --help` works on any box.
"""

from __future__ import annotations

import argparse
from pathlib import Path

_RUN_HELP = """Run a station until Ctrl-C / SIGTERM (or until every finite source such as a
video file or image folder has ended). On stop it finishes the frames already queued,
flushes the MQTT outbox and publishes 'offline'. Metrics: http://<host>:<metrics.port>/metrics,
health: /health. See docs/edge.md for every config key."""

_VALIDATE_HELP = """Check a station YAML without starting anything: prints each problem as
FILE:LINE: key.path: message and exits 2, or prints a summary and exits 0. Also checks
that the artifact's manifest is readable and every file matches its sha256, unless
--schema-only."""


_DEMO_HELP = """Run the synthetic line camera through an export artifact, publish verdicts and
masks to a local MQTT broker (Mosquitto if installed, else the embedded pure-Python
amqtt), and subscribe to them like a PLC (QoS 1, persistent session). Shows a progress
bar and one line per NG part while it runs; at the end prints and writes to
OUT/summary.json: frames, verdicts the PLC received (must equal frames), throughput,
latency p50/p95/p99 from capture to verdict received and per stage, accuracy against the
line's ground truth (accuracy, miss rate, overkill rate, confusion table, mask IoU), and
saves NG overlays (frame + published mask in red + ground truth in green) in OUT/overlays.
Exit 0 when every verdict reached the PLC, 1 when some did not, 2 on bad input.
Make the inputs with: eiad data synth --out LINE ; eiad export onnx --checkpoint CKPT --out ARTIFACT.
See docs/edge_demo.md."""


def register(commands) -> None:
    parser = commands.add_parser(
        "edge",
        help="run an inspection station: camera -> verdict + mask over MQTT",
        description="run an inspection station: camera -> verdict + mask over MQTT.",
    )
    sub = parser.add_subparsers(dest="edge_command", metavar="COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    run = sub.add_parser("run", help="run a station from its YAML", description=_RUN_HELP)
    run.add_argument(
        "--config",
        type=Path,
        required=True,
        metavar="STATION.yaml",
        help="the station config (start from configs/station.yaml)",
    )
    run.add_argument(
        "--duration-s", type=float, default=None, help="stop after this many seconds (default: run until stopped)"
    )
    run.set_defaults(func=_run)

    demo = sub.add_parser(
        "demo",
        help="synthetic line -> artifact -> local broker -> PLC view, with accuracy and latency",
        description=_DEMO_HELP,
    )
    demo.add_argument(
        "--artifact",
        type=Path,
        required=True,
        metavar="DIR",
        help="export artifact folder (eiad export onnx --out DIR)",
    )
    demo.add_argument(
        "--line",
        type=Path,
        required=True,
        metavar="DIR",
        help="synthetic line folder (eiad data synth --out DIR): DIR/stream/line.avi + ground_truth.jsonl",
    )
    demo.add_argument(
        "--frames",
        type=int,
        default=None,
        metavar="N",
        help="parts to inspect (default: the video's length; more loops it)",
    )
    demo.add_argument(
        "--fps",
        type=float,
        default=None,
        metavar="F",
        help="camera trigger rate in parts/s (default: the video's own rate; 0: as fast as the station takes them)",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("runs/edge_demo"),
        metavar="DIR",
        help="summary.json and overlays/ go here (default runs/edge_demo)",
    )
    demo.add_argument(
        "--explain",
        action="store_true",
        help="also explain NG parts with the artifact's language model (needs ARTIFACT/llm)",
    )
    demo.add_argument(
        "--broker",
        choices=("auto", "mosquitto", "embedded"),
        default="auto",
        help="auto: Mosquitto if installed, else embedded amqtt (default auto)",
    )
    demo.add_argument("--overlays", type=int, default=6, metavar="N", help="NG overlays to save (default 6)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar or NG lines (for logs and CI)")
    demo.add_argument(
        "--no-page", action="store_true", help="do not start the operator's web page (default: started, URL printed)"
    )
    demo.add_argument(
        "--page-port", type=int, default=0, metavar="PORT", help="the page's port on 127.0.0.1 (default 0: a free one)"
    )
    demo.add_argument(
        "--keep-page",
        action="store_true",
        help="keep the page up after the line's last part, until Ctrl-C (to look at it and try the feedback)",
    )
    demo.set_defaults(func=_demo)

    password = sub.add_parser(
        "password-hash",
        help="make a password hash for a user of the station's servers (hmi.users, opcua.users)",
        description="Asks for a password twice (or reads one line from stdin when not a terminal) and prints "
        "its scrypt hash, to paste into <section>.users.<name>.password_hash or to put in the environment variable "
        "named by password_hash_env. The password itself is never stored.",
    )
    password.set_defaults(func=_password_hash)

    check = sub.add_parser(
        "validate-config", help="check a station YAML and print every error with its line", description=_VALIDATE_HELP
    )
    check.add_argument("config", type=Path, metavar="STATION.yaml")
    check.add_argument("--schema-only", action="store_true", help="do not open the artifact")
    check.set_defaults(func=_validate)


def _run(args: argparse.Namespace) -> int:
    import threading

    from edge.app import run_station
    from edge.config import load_station_config

    config = load_station_config(args.config)
    stop = threading.Event()
    if args.duration_s is not None:
        timer = threading.Timer(args.duration_s, stop.set)
        timer.daemon = True
        timer.start()
    summary = run_station(config, stop)
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(summary.verdicts.items())) or "none"
    print(
        f"{summary.frames} results ({verdicts}); sink failures {summary.sink_failures}; last sequence "
        f"{summary.last_sequence}"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from edge.demo.options import DemoOptions
    from edge.demo.report import format_summary
    from edge.demo.run import run_demo

    summary = run_demo(
        DemoOptions(
            artifact=args.artifact,
            line=args.line,
            out=args.out,
            frames=args.frames,
            fps=args.fps,
            explain=args.explain,
            broker=args.broker,
            overlays=args.overlays,
            progress=not args.no_progress,
            page=not args.no_page,
            page_port=args.page_port,
            keep_page=args.keep_page,
        )
    )
    print(format_summary(summary))
    print(f"summary: {args.out / 'summary.json'}")
    if not summary["all_received"]:
        print(f"FAILED: the PLC received {summary['verdicts_received']} verdicts for {summary['frames']} frames")
        return 1
    return 0


def _password_hash(args: argparse.Namespace) -> int:
    import getpass
    import sys

    from edge.access.passwords import hash_password
    from eiad.errors import ConfigError

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ; nothing printed")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise ConfigError("use at least 8 characters")
    print(hash_password(password))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from edge.config import load_station_config

    config = load_station_config(args.config)
    artifact_note = "artifact not checked (--schema-only)"
    if not args.schema_only:
        from eiad.manifest import load_manifest

        manifest = load_manifest(config.path(config.artifact))
        artifact_note = (
            f"artifact {manifest.model_id} ({manifest.input.width}x{manifest.input.height}, "
            f"{len(manifest.files)} file(s) verified)"
        )
    sources = ", ".join(f"{s.id} ({s.kind}, {s.policy})" for s in config.sources)
    mqtt = f"mqtt {config.mqtt.host}:{config.mqtt.port}" if config.mqtt else "no mqtt"
    print(
        f"OK: {args.config}: station {config.line_id}/{config.station_id}; sources: {sources}; {artifact_note}; {mqtt}"
    )
    return 0
