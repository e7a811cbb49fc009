"""What the station's own servers cost the verdicts: the loop's capture -> verdict received
latency with a server on and clients using it, against the same load without it.

    python -m benchmarks.server_cost --server hmi --clients 5 --config benchmarks/results/station.yaml \\
        --fps 30 --cameras 1 --duration-s 30 --repeats 2 --out benchmarks/results/hmi_cost
    python -m benchmarks.server_cost --server opcua --clients 3 --config benchmarks/results/station.yaml \\
        --fps 30 --cameras 1 --duration-s 30 --repeats 2 --out benchmarks/results/opcua_cost

The runs alternate (off, on, off, on, ...) so a machine that gets busier or quieter over
time weighs on both alike; p99 is taken over all verdicts of each configuration pooled.
The clients run in another process:
- hmi: browser stand-ins doing what the page's script does: log in, hold the event stream
  open, fetch a new part's picture and overlay at most 4 times a second, the health every
  2 s and the history every 10 s;
- opcua: PLC stand-ins (asyncua clients, Basic256Sha256 SignAndEncrypt, a user and a
  trusted certificate) subscribed to ResultReady events on the Server object, publishing
  interval 10 ms; each event's arrival is timed against its capture time and its
  capture -> verdict latency, giving verdict -> client event.
On a line the clients run on other machines; here they share the box's CPUs in Linux's idle
scheduling class (SCHED_IDLE), standing in for machines that take none of the station's time.
`--priority` sets the server process's CPU priority (a nice value or idle; default: the
setting's default).
The servers run as a station runs them: in their own processes (edge/sidecar.py), started
and stopped by benchmarks/server_drivers.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from benchmarks.line_load import LineLoad, load_frames, load_truth
from benchmarks.report import new_result
from benchmarks.server_drivers import OpcUaUnderLoad, PageUnderLoad
from benchmarks.stand_ins.server_clients import PASSWORD
from benchmarks.stats import summarize_ms

log = logging.getLogger(__name__)


def parse_priority(text: str):
    """--priority: "idle" or a nice value 0-19."""
    if text == "idle":
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 19:
        raise argparse.ArgumentTypeError(f"--priority takes idle or a nice value 0-19, not {text!r}")
    return value


SERVERS = {"hmi": PageUnderLoad, "opcua": OpcUaUnderLoad}
GOAL_ADDED_P99_MS = 1.0


def bench_server(config_path: Path, load: LineLoad, server: str, clients: int, repeats: int, priority=None) -> dict:
    from benchmarks.broker import broker_for_run
    from benchmarks.line_bench import run_loop
    from edge.access.passwords import hash_password
    from edge.config import load_station_config
    from edge.runners.factory import build_runner
    from eiad.manifest import load_manifest

    config = load_station_config(config_path)
    artifact = config.path(config.artifact)
    manifest = load_manifest(artifact)
    frames, frames_source = load_frames(config, manifest, None)
    truth = load_truth(config, None, len(frames))
    side = SERVERS[server](config, manifest, clients, hash_password(PASSWORD), priority)
    result = new_result(
        f"{server}_cost",
        {
            "server": server,
            "config": str(config_path),
            "model_id": manifest.model_id,
            "cameras": load.cameras,
            "fps_per_camera": load.fps_per_camera,
            "duration_s": load.duration_s,
            "clients": clients,
            "repeats": repeats,
            "priority": priority,  # None: the setting's default
            "frames": frames_source,
        },
        command="python -m benchmarks.server_cost " + " ".join(sys.argv[1:]),
    )
    totals: dict[str, list[np.ndarray]] = {"off": [], "on": []}
    runs, event_latencies = [], []
    context = multiprocessing.get_context("spawn")
    with ExitStack() as stack:
        host, port = broker_for_run(stack, "private", config.mqtt, config_path)
        runner = build_runner(config.runner, artifact, manifest, config.path)
        stack.callback(runner.close)
        for repeat in range(repeats):
            for mode in ("off", "on"):
                with tempfile.TemporaryDirectory(prefix=f"eiad-bench-{server}-") as tmp:
                    extra = side.start(Path(tmp), context) if mode == "on" else {}
                    try:
                        run = run_loop(config, runner, frames, load, host, port, truth=truth, extra_sinks=extra)
                    finally:
                        side_stats = side.stop() if mode == "on" else {}
                total = run.stages_ms["total"]
                totals[mode].append(total)
                entry = {
                    "repeat": repeat,
                    "server": mode,
                    "verdicts": int(total.size),
                    "lost": run.lost,
                    "p50_ms": float(np.percentile(total, 50)),
                    "p99_ms": float(np.percentile(total, 99)),
                    "cpu_per_part_ms": (run.cpu or {}).get("per_part_ms"),  # the station's, server threads included
                    "cpu_inline_p50_ms": (run.cpu or {}).get("inline_p50_ms"),
                    "cpu_background_ms_per_frame": (run.cpu or {}).get("background_ms_per_frame"),
                    **side_stats,
                }
                if "server_process_cpu_s" in side_stats and run.frames_captured:
                    # the server's process over the whole run (clients connected), per part captured
                    cpu_ms = 1e3 * side_stats["server_process_cpu_s"]
                    entry["server_process_cpu_per_part_ms"] = cpu_ms / run.frames_captured
                if "verdict_to_event_ms" in side_stats:
                    event_latencies.append(side_stats["verdict_to_event_ms"])
                runs.append(entry)
                log.info("%s", entry)
    pooled = {mode: summarize_ms(np.concatenate(values)).__dict__ for mode, values in totals.items()}
    added = pooled["on"]["p99_ms"] - pooled["off"]["p99_ms"]
    result["runs"] = runs
    result["pooled_ms"] = pooled
    result["added_p99_ms"] = added
    result["goal"] = {"added_p99_ms": GOAL_ADDED_P99_MS, "met": added <= GOAL_ADDED_P99_MS}
    return result


_TITLES = {
    "hmi": ("The operator page's cost to the verdicts", "page", "browsers"),
    "opcua": ("The OPC UA server's cost to the verdicts", "OPC UA server", "PLC clients"),
}


def report_md(result: dict) -> str:
    s = result["settings"]
    title, thing, clients = _TITLES[s["server"]]
    lines = [
        f"# {title}",
        "",
        f"`python -m benchmarks.server_cost --server {s['server']} --clients {s['clients']} --config {s['config']} "
        f"--fps {s['fps_per_camera']:g} --cameras {s['cameras']} --duration-s {s['duration_s']:g} "
        f"--repeats {s['repeats']}{_priority_flag(s.get('priority'))}`",
        "",
        f"{_machine(result['environment'])}; model {s['model_id']}; capture -> verdict received by an "
        "MQTT subscriber, the first frames of each run left out (warm-up)",
        "",
        f"| run | {thing} | verdicts | lost | p50 ms | p99 ms | {clients} | server published | server dropped "
        "| updates the clients got | verdict -> client event p50 / p99 ms | station CPU per OK / NG part ms "
        f"| {thing}'s process CPU per part ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        event = r.get("verdict_to_event_ms")
        event_text = f"{event['p50']:.2f} / {event['p99']:.2f}" if event else "-"
        lines.append(
            f"| {r['repeat'] + 1} | {r['server']} | {r['verdicts']} | {r['lost']} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r.get('clients_connected', '-')} | {r.get('server_published', '-')} | "
            f"{r.get('server_dropped', '-')} | {r.get('client_updates', '-')} | "
            f"{event_text} | {_cpu_text(r.get('cpu_per_part_ms'))} | "
            f"{_number(r.get('server_process_cpu_per_part_ms'))} |"
        )
    off, on = result["pooled_ms"]["off"], result["pooled_ms"]["on"]
    goal = result["goal"]
    lines += [
        "",
        f"Pooled: without the {thing} p50 {off['p50_ms']:.2f} / p99 {off['p99_ms']:.2f} ms over {off['count']} "
        f"verdicts; with it and {s['clients']} {clients} p50 {on['p50_ms']:.2f} / p99 {on['p99_ms']:.2f} ms over "
        f"{on['count']}. Added p99: {result['added_p99_ms']:+.2f} ms (goal <= +{goal['added_p99_ms']:g} ms: "
        f"{'met' if goal['met'] else 'MISSED'}).",
        "",
    ]
    return "\n".join(lines)


def _priority_flag(priority) -> str:
    return "" if priority is None else f" --priority {priority}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cpu_text(per_part: dict | None) -> str:
    if not per_part or per_part.get("OK") is None:
        return "-"
    ng = per_part.get("NG")
    return f"{per_part['OK']:.2f} / {'-' if ng is None else f'{ng:.2f}'}"


def _machine(env: dict) -> str:
    return f"{env.get('machine', '?')} {env.get('cpu', '?')}, {env.get('cpu_affinity') or env.get('cpu_count')} CPUs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.server_cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--server", choices=sorted(SERVERS), required=True, help="which server to measure")
    parser.add_argument("--config", type=Path, required=True, help="station.yaml (artifact, runner, source video)")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second per camera")
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--duration-s", type=float, default=30.0, help="each run's length")
    parser.add_argument("--clients", type=int, default=5, help="browsers (hmi) or PLCs (opcua) using the server")
    parser.add_argument("--repeats", type=int, default=2, help="off/on pairs")
    parser.add_argument(
        "--priority",
        type=parse_priority,
        default=None,
        help="the server process's CPU priority: a nice value 0-19 or idle (default: the setting's default)",
    )
    parser.add_argument("--out", type=Path, default=None, help="default bench_out/<server>_cost")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    load = LineLoad(args.fps, args.cameras, args.duration_s, 15.0, "block", 4)
    result = bench_server(args.config, load, args.server, args.clients, args.repeats, args.priority)
    args.out = args.out or Path("bench_out") / f"{args.server}_cost"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = report_md(result)
    (args.out / "report.md").write_text(text, encoding="utf-8")
    print(text)
    return 0 if result["goal"]["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
