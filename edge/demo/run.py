"""`eiad edge demo`: the synthetic line through an artifact to a local broker and a PLC.

    artifact + line  ->  station (build_station: runner, MQTT sink + outbox, explainer)
                     ->  local broker (Mosquitto, else embedded amqtt)
                     ->  PLC subscriber (QoS 1, persistent session) -> live view
    then: score what the PLC received against the line's ground truth -> summary.json,
    NG overlays (image + published mask in red + ground truth outline in green)

The station is the real one from `edge.app.build_station`; only its camera differs: a
`DemoCamera` (the synthetic line video, looped, paced on an absolute schedule of `fps`
ticks like a triggered line camera, stopping after `frames`), handed to
`build_station(..., sources=...)`. Every timestamp is `monotonic_ns` in
this one process, so capture -> verdict-received latency is exact.
Scoring is on what the PLC received (its verdicts and masks), never on the station's
own results: a verdict lost on the way would show as a missing one.
"""

from __future__ import annotations

import json
import logging
import secrets
import signal
import tempfile
import threading
import time
from pathlib import Path

from tqdm import tqdm

from edge.access.passwords import hash_password
from edge.config import StationConfig
from edge.demo.camera import DemoCamera, LineFiles, Shots, find_line, truth_of
from edge.demo.live_view import LiveView, PlcSubscriber
from edge.demo.options import DemoOptions
from edge.demo.overlays import write_overlays
from edge.demo.recorder import Recorder
from edge.demo.report import build_summary
from edge.sinks.mqtt.broker import LocalBroker, start_broker
from eiad.errors import ArtifactError, DataError
from eiad.manifest import Manifest, has_llm, llm_dir, load_manifest, read_llm_config
from eiad.messages import Topics

log = logging.getLogger(__name__)


def check_artifact(artifact: Path, explain: bool) -> Manifest:
    """The artifact's manifest (files verified); ArtifactError saying what to run otherwise."""
    artifact = Path(artifact)
    if not (artifact / "manifest.json").is_file():
        raise ArtifactError(
            f"no export artifact at {artifact} (no manifest.json): export the trained model with "
            f"'eiad export onnx --checkpoint CHECKPOINT --out {artifact}'"
        )
    manifest = load_manifest(artifact)
    if explain and not has_llm(artifact):
        raise ArtifactError(
            f"--explain needs the artifact's language model part {llm_dir(artifact)}: add it with "
            f"'eiad export llm ... --out {artifact}', or run the demo without --explain"
        )
    return manifest


def station_config(
    opts: DemoOptions, line: LineFiles, broker: LocalBroker, workdir: Path, frames: int, page_hash: str | None = None
) -> StationConfig:
    """The demo station: one synthetic camera, MQTT to the local broker, a throw-away outbox,
    and (with `page_hash`) the operator's page for one user, `operator`, with that password hash."""
    explainer = None
    if opts.explain:
        llm = read_llm_config(Path(opts.artifact))
        have = llm.get("precisions", [])
        precision = next((p for p in ("int8", "int4", "fp32") if p in have), "int8")
        # Backlog as long as the run: the demo shows every NG part explained, none dropped.
        explainer = {"mode": "NG", "precision": precision, "backlog_max": max(1, frames)}
    return StationConfig.model_validate(
        {
            "station_id": "demo",
            "line_id": "synthline",
            "artifact": str(Path(opts.artifact).resolve()),
            "sources": [
                {
                    "kind": "synthetic",
                    "id": "cam0",
                    "path": str(line.video),
                    "truth": str(line.truth_path),
                    "loop": True,
                }
            ],
            "frames": {"wrong_size": "resize"},
            "metrics": {"enabled": False},
            "sequence_file": None,
            "mqtt": {
                "host": broker.host,
                "port": broker.port,
                "protocol": broker.protocol,
                "client_id": "eiad-demo-station",
                "publish_masks": "ng",
                "close_timeout_s": 15.0,
            },
            # A fresh outbox: one left by an earlier demo would replay its verdicts to this PLC.
            "outbox": {"path": str(workdir / "outbox.sqlite3")},
            "explainer": explainer,
            "hmi": None
            if page_hash is None
            else {
                "port": opts.page_port,
                "users": {"operator": {"role": "operator", "password_hash": page_hash}},
                # Kept beside the summary: the history and the operators' judgements outlive the run.
                "data_dir": str(Path(opts.out).resolve() / "hmi"),
                "review_dir": str(Path(opts.out).resolve() / "review"),
            },
        }
    )


def run_demo(opts: DemoOptions) -> dict:
    """Run the demo end to end; returns the summary (also written to `out/summary.json`)."""
    manifest = check_artifact(opts.artifact, opts.explain)
    line = find_line(opts.line)
    frames = opts.frames if opts.frames is not None else len(line.truth)
    fps = line.fps if opts.fps is None else opts.fps
    if frames < 1:
        raise DataError("--frames must be at least 1")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    shots, recorder = Shots(frames, fps), Recorder()
    from tqdm.contrib.logging import logging_redirect_tqdm

    # Log lines go through tqdm.write so they do not tear the progress bar.
    with (
        logging_redirect_tqdm(),
        tempfile.TemporaryDirectory(prefix="eiad-demo-") as work,
        start_broker(opts.broker) as broker,
    ):  # type: ignore[arg-type]
        password = secrets.token_urlsafe(9) if opts.page else None
        config = station_config(opts, line, broker, Path(work), frames, password and hash_password(password))
        topics = Topics(config.mqtt.topic_prefix, config.line_id, config.station_id)
        view = LiveView(frames, enabled=opts.progress)
        plc = PlcSubscriber(
            broker.host,
            broker.port,
            broker.protocol,
            topics,
            on_verdict=lambda payload, ns: view.verdict(payload.get("verdict", "?"), _ng_line(payload, shots)),
        ).start()
        try:
            page: dict = {}
            elapsed_s = _run_station(config, recorder, shots, line, password, opts.keep_page, page)
            verdict_ids = set(recorder.results)
            mask_ids = {i for i, r in recorder.results.items() if r["verdict"] == "NG"}
            plc.wait_for(verdict_ids, mask_ids, timeout_s=15.0)
            if opts.explain:
                plc.wait_quiet(lambda r: len(r.explanations), len(recorder.explained), timeout_s=15.0)
            received = plc.snapshot()
        finally:
            plc.close()
            view.close()
    summary = build_summary(opts, manifest, line, broker, frames, fps, shots, recorder, received, elapsed_s)
    if page:
        summary["page"] = page
    summary["overlays"] = write_overlays(out / "overlays", line, shots, recorder, received, opts.overlays)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _run_station(
    config: StationConfig,
    recorder: Recorder,
    shots: Shots,
    line: LineFiles,
    password: str | None = None,
    keep_page: bool = False,
    page: dict | None = None,
) -> float:
    """The real station (build_station) with the demo camera; returns the run's seconds
    (without the time the page was kept up afterwards). `page` receives the operator page's
    URL and counters."""
    from edge.app import build_station
    from edge.health.metrics import Metrics
    from edge.sources.watchdog import SourceSet

    sources = SourceSet(events=Metrics())
    sources.add("cam0", lambda: DemoCamera("cam0", line, shots), "block", 4, None, stall_timeout_s=30.0)
    station = build_station(config, {"demo": recorder}, sources=sources)
    if station.hmi is not None:
        tqdm.write(f"operator page: {station.hmi.url}  (log in as 'operator', password '{password}')")
    stop = threading.Event()
    restore = _on_interrupt(stop.set)
    # The station's own log line per NG part would tear through the live view; the PLC view shows them.
    app_log = logging.getLogger("edge.app")
    level = app_log.level
    app_log.setLevel(max(level, logging.WARNING))
    started = time.perf_counter()
    try:
        station.pipeline.run(stop)
        if config.explainer is not None:  # closing the explainer drops its backlog: let it finish first
            _wait(
                lambda: len(recorder.explained) >= recorder.count("NG"),
                timeout_s=30.0 + 5.0 * recorder.count("NG"),
                stop=stop,
            )
        elapsed = time.perf_counter() - started
        if keep_page and station.hmi is not None and not stop.is_set():
            tqdm.write(f"the line has ended; the page stays up on {station.hmi.url} until Ctrl-C")
            stop.wait()
    finally:
        station.close()  # flushes the outbox, publishes 'offline'; the page stores what it holds
        if station.hmi is not None and page is not None:
            page.update({"url": station.hmi.url, **station.hmi.feed.stats()})
        app_log.setLevel(level)
        restore()
    return elapsed


def _wait(done, timeout_s: float, stop: threading.Event) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.05)


def _on_interrupt(action):
    """Ctrl-C / SIGTERM stop the camera; in-flight frames still finish (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {sig: signal.signal(sig, lambda *_: action()) for sig in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(sig, handler) for sig, handler in old.items()]


def _ng_line(payload: dict, shots: Shots) -> str | None:
    """The live view's line for an NG verdict (None for OK), with the ground truth beside it."""
    if payload.get("verdict") != "NG":
        return None
    frame_id = int(payload.get("frame_id", -1))
    truth = truth_of(shots, frame_id)
    said = f"truth {truth.get('label', '?')} {truth.get('defect') or ''}".rstrip() if truth else "no truth"
    return (
        f"#{payload.get('sequence')} frame {frame_id}: NG score {float(payload.get('score', 0)):.3f} "
        f"{payload.get('defect_class') or '-'} ({len(payload.get('regions', []))} region(s))  [{said}]"
    )
