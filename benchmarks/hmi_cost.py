"""What the operator page costs the verdicts: the station loop's capture -> verdict received
latency with the page on and browsers streaming from it, against the same load without it.

    python -m benchmarks.hmi_cost --config benchmarks/results/station.yaml \\
        --fps 30 --cameras 1 --duration-s 30 --browsers 5 --repeats 2 --out benchmarks/results/hmi_cost

The runs alternate (off, on, off, on, ...) so a machine that gets busier or quieter over
time weighs on both alike; p99 is taken over all verdicts of each configuration pooled.
The browsers are stand-ins in another process doing what the page's script does: log in,
hold the event stream open, fetch a new part's picture and overlay at most 4 times a
second, the health every 2 s and the history every 10 s. On a line the browsers run on
the operators' PCs, not on the edge box; here they share its CPUs, which only adds cost.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from benchmarks.line_load import LineLoad, load_frames, load_truth
from benchmarks.report import new_result
from benchmarks.stats import summarize_ms

log = logging.getLogger(__name__)

GOAL_ADDED_P99_MS = 1.0
_USER, _PASSWORD = "bench", "bench-password-1"


def _browser(url: str, stop, counts) -> None:
    """One page's traffic, until `stop`; counts events and pictures fetched."""
    import http.client
    import urllib.request

    base = url.rstrip("/")
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    login = urllib.request.Request(
        base + "/api/login",
        data=json.dumps({"user": _USER, "password": _PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with opener.open(login, timeout=10) as response:
        cookie = response.headers["Set-Cookie"].split(";")[0]
    host, port = base.split("//")[1].split(":")
    stream = http.client.HTTPConnection(host, int(port), timeout=30)
    stream.request("GET", "/api/events", headers={"Cookie": cookie})
    events = stream.getresponse()

    def get(path: str) -> None:
        request = urllib.request.Request(base + path, headers={"Cookie": cookie})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
        except OSError:
            pass

    last_picture = last_health = last_history = 0.0
    while not stop.is_set():
        line = events.fp.readline()
        if not line:
            break
        if not line.startswith(b"data: "):
            continue
        with counts.get_lock():
            counts[0] += 1
        now = time.monotonic()
        data = json.loads(line[6:])
        if "verdict" in data and now - last_picture >= 0.25:
            get(f"/media/{data['inspection_id']}/image")
            if data.get("mask"):
                get(f"/media/{data['inspection_id']}/overlay")
            with counts.get_lock():
                counts[1] += 1
            last_picture = now
        if now - last_health >= 2.0:
            get("/api/health")
            last_health = now
        if now - last_history >= 10.0:
            get("/api/history?limit=50")
            last_history = now
    stream.close()


def _browsers_process(url: str, n: int, stop, counts) -> None:
    threads = [threading.Thread(target=_browser, args=(url, stop, counts), daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(timeout=5)


def bench_hmi(config_path: Path, load: LineLoad, browsers: int, repeats: int) -> dict:
    from benchmarks.broker import broker_for_run
    from benchmarks.line_bench import run_loop
    from edge.access.passwords import hash_password
    from edge.config import load_station_config
    from edge.hmi.server import start_hmi
    from edge.hmi.settings import HmiSettings
    from edge.runners.factory import build_runner
    from eiad.manifest import load_manifest

    config = load_station_config(config_path)
    artifact = config.path(config.artifact)
    manifest = load_manifest(artifact)
    frames, frames_source = load_frames(config, manifest, None)
    truth = load_truth(config, None, len(frames))
    password_hash = hash_password(_PASSWORD)
    result = new_result(
        "hmi_cost",
        {
            "config": str(config_path),
            "model_id": manifest.model_id,
            "cameras": load.cameras,
            "fps_per_camera": load.fps_per_camera,
            "duration_s": load.duration_s,
            "browsers": browsers,
            "repeats": repeats,
            "frames": frames_source,
        },
        command="python -m benchmarks.hmi_cost " + " ".join(sys.argv[1:]),
    )
    totals: dict[str, list[np.ndarray]] = {"off": [], "on": []}
    runs = []
    context = multiprocessing.get_context("spawn")
    with ExitStack() as stack:
        host, port = broker_for_run(stack, "private", config.mqtt, config_path)
        runner = build_runner(config.runner, artifact, manifest, config.path)
        stack.callback(runner.close)
        for repeat in range(repeats):
            for mode in ("off", "on"):
                extra, page, helpers, stop, counts = {}, None, None, None, None
                with tempfile.TemporaryDirectory(prefix="eiad-bench-hmi-") as tmp:
                    if mode == "on":
                        settings = HmiSettings(
                            port=0,
                            users={_USER: {"role": "viewer", "password_hash": password_hash}},
                            data_dir=Path(tmp) / "hmi",
                            review_dir=Path(tmp) / "review",
                        )
                        about = {"line": config.line_id, "station": config.station_id, "model_id": manifest.model_id}
                        page = start_hmi(settings, Path, config.line_id, lambda: {"status": "ok"}, about)
                        extra = {"hmi": page.feed}
                        stop, counts = context.Event(), context.Array("l", 2)
                        helpers = context.Process(target=_browsers_process, args=(page.url, browsers, stop, counts))
                        helpers.start()
                        deadline = time.monotonic() + 20
                        while page.feed.hub.clients < browsers and time.monotonic() < deadline:
                            time.sleep(0.05)
                    try:
                        run = run_loop(config, runner, frames, load, host, port, truth=truth, extra_sinks=extra)
                    finally:
                        if page is not None:
                            stats = page.feed.stats()
                            stop.set()
                            helpers.join(timeout=15)
                            page.close()
                total = run.stages_ms["total"]
                totals[mode].append(total)
                entry = {
                    "repeat": repeat,
                    "page": mode,
                    "verdicts": int(total.size),
                    "lost": run.lost,
                    "p50_ms": float(np.percentile(total, 50)),
                    "p99_ms": float(np.percentile(total, 99)),
                }
                if mode == "on":
                    entry.update(
                        browsers_connected=stats["clients"],
                        page_written=stats["written"],
                        page_dropped=stats["dropped"],
                        updates_received=int(counts[0]),
                        pictures_fetched=int(counts[1]),
                    )
                runs.append(entry)
                log.info("%s", entry)
    pooled = {mode: summarize_ms(np.concatenate(values)).__dict__ for mode, values in totals.items()}
    added = pooled["on"]["p99_ms"] - pooled["off"]["p99_ms"]
    result["runs"] = runs
    result["pooled_ms"] = pooled
    result["added_p99_ms"] = added
    result["goal"] = {"added_p99_ms": GOAL_ADDED_P99_MS, "met": added <= GOAL_ADDED_P99_MS}
    return result


def report_md(result: dict) -> str:
    s = result["settings"]
    lines = [
        "# The operator page's cost to the verdicts",
        "",
        f"`python -m benchmarks.hmi_cost --config {s['config']} --fps {s['fps_per_camera']:g} --cameras "
        f"{s['cameras']} --duration-s {s['duration_s']:g} --browsers {s['browsers']} --repeats {s['repeats']}`",
        "",
        f"{_machine(result['environment'])}; model {s['model_id']}; capture -> verdict received by an "
        "MQTT subscriber, the first frames of each run left out (warm-up)",
        "",
        "| run | page | verdicts | lost | p50 ms | p99 ms | browsers | page stored | page dropped | updates read |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['repeat'] + 1} | {r['page']} | {r['verdicts']} | {r['lost']} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r.get('browsers_connected', '-')} | {r.get('page_written', '-')} | "
            f"{r.get('page_dropped', '-')} | {r.get('updates_received', '-')} |"
        )
    off, on = result["pooled_ms"]["off"], result["pooled_ms"]["on"]
    goal = result["goal"]
    lines += [
        "",
        f"Pooled: without the page p50 {off['p50_ms']:.2f} / p99 {off['p99_ms']:.2f} ms over {off['count']} verdicts; "
        f"with the page and {s['browsers']} browsers p50 {on['p50_ms']:.2f} / p99 {on['p99_ms']:.2f} ms over "
        f"{on['count']}. Added p99: {result['added_p99_ms']:+.2f} ms (goal <= +{goal['added_p99_ms']:g} ms: "
        f"{'met' if goal['met'] else 'MISSED'}).",
        "",
    ]
    return "\n".join(lines)


def _machine(env: dict) -> str:
    return f"{env.get('machine', '?')} {env.get('cpu', '?')}, {env.get('cpu_affinity') or env.get('cpu_count')} CPUs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.hmi_cost", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, required=True, help="station.yaml (artifact, runner, source video)")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second per camera")
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--duration-s", type=float, default=30.0, help="each run's length")
    parser.add_argument("--browsers", type=int, default=5, help="pages streaming from the station")
    parser.add_argument("--repeats", type=int, default=2, help="off/on pairs")
    parser.add_argument("--out", type=Path, default=Path("bench_out/hmi_cost"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    load = LineLoad(args.fps, args.cameras, args.duration_s, 15.0, "block", 4)
    result = bench_hmi(args.config, load, args.browsers, args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = report_md(result)
    (args.out / "report.md").write_text(text, encoding="utf-8")
    print(text)
    return 0 if result["goal"]["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
