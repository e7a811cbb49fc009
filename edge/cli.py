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


def register(commands) -> None:
    parser = commands.add_parser("edge", help="run an inspection station: camera -> verdict + mask over MQTT",
                                 description="run an inspection station: camera -> verdict + mask over MQTT.")
    sub = parser.add_subparsers(dest="edge_command", metavar="COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    run = sub.add_parser("run", help="run a station from its YAML", description=_RUN_HELP)
    run.add_argument("--config", type=Path, required=True, metavar="STATION.yaml", help="the station config (start from configs/station.yaml)")
    run.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds (default: run until stopped)")
    run.set_defaults(func=_run)

    check = sub.add_parser("validate-config", help="check a station YAML and print every error with its line", description=_VALIDATE_HELP)
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
    print(f"{summary.frames} results ({verdicts}); sink failures {summary.sink_failures}; last sequence {summary.last_sequence}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from edge.config import load_station_config

    config = load_station_config(args.config)
    artifact_note = "artifact not checked (--schema-only)"
    if not args.schema_only:
        from eiad.manifest import load_manifest

        manifest = load_manifest(config.path(config.artifact))
        artifact_note = f"artifact {manifest.model_id} ({manifest.input.width}x{manifest.input.height}, {len(manifest.files)} file(s) verified)"
    sources = ", ".join(f"{s.id} ({s.kind}, {s.policy})" for s in config.sources)
    mqtt = f"mqtt {config.mqtt.host}:{config.mqtt.port}" if config.mqtt else "no mqtt"
    print(f"OK: {args.config}: station {config.line_id}/{config.station_id}; sources: {sources}; {artifact_note}; {mqtt}")
    return 0
