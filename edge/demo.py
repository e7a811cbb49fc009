"""`eiad edge demo`: the synthetic line through an artifact to a local broker and a PLC.

    artifact + line  ->  station (build_station: runner, MQTT sink + outbox, explainer)
                     ->  local broker (Mosquitto, else embedded amqtt)
                     ->  PLC subscriber (QoS 1, persistent session) -> live view
    then: score what the PLC received against the line's ground truth -> summary.json,
    NG overlays (image + published mask in red + ground truth outline in green)

The station is the real one from `edge.app.build_station`; only its camera differs: a
`DemoCamera` (the synthetic line video, looped, paced on an absolute schedule of `fps`
ticks like a triggered line camera, stopping after `frames`) in a fresh Pipeline built
from the station's own runner, sinks and metrics. Every timestamp is `monotonic_ns` in
this one process, so capture -> verdict-received latency is exact.
Scoring is on what the PLC received (its verdicts and masks), never on the station's
own results: a verdict lost on the way would show as a missing one.
"""

from __future__ import annotations

import json
import logging
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.broker import LocalBroker, start_broker
from edge.config import StationConfig
from edge.live_view import LiveView, PlcSubscriber, Received
from edge.sources.base import Capture
from edge.sources.synthetic import SIDECAR_NAME, SyntheticLineSource, read_truth
from eiad.errors import ArtifactError, DataError, SourceError
from eiad.manifest import Manifest, load_manifest
from eiad.messages import Topics

log = logging.getLogger(__name__)

VIDEO_NAMES = ("line.avi", "line.mkv")
STAGES = (("capture", "captured", "queued"), ("queue", "queued", "dequeued"), ("preprocess", "dequeued", "preprocessed"),
          ("inference", "preprocessed", "inferred"), ("postprocess", "inferred", "decided"),
          ("sinks+outbox", "decided", "outboxed"), ("broker->PLC", "outboxed", "received"))


@dataclass(frozen=True)
class DemoOptions:
    """What `eiad edge demo` was asked for. `frames` None: the video's length; `fps` None:
    the video's own rate, 0: as fast as the station takes frames."""

    artifact: Path
    line: Path
    out: Path
    frames: int | None = None
    fps: float | None = None
    explain: bool = False
    broker: str = "auto"
    overlays: int = 6
    progress: bool = True


@dataclass(frozen=True)
class LineFiles:
    folder: Path  # holds the video, ground_truth.jsonl and masks/
    video: Path
    truth_path: Path
    truth: dict[int, dict]
    fps: float
    size_wh: tuple[int, int]


def check_artifact(artifact: Path, explain: bool) -> Manifest:
    """The artifact's manifest (files verified); ArtifactError saying what to run otherwise."""
    artifact = Path(artifact)
    if not (artifact / "manifest.json").is_file():
        raise ArtifactError(f"no export artifact at {artifact} (no manifest.json): export the trained model with "
                            f"'eiad export onnx --checkpoint CHECKPOINT --out {artifact}'")
    manifest = load_manifest(artifact)
    if explain and not (artifact / "llm" / "llm_config.json").is_file():
        raise ArtifactError(f"--explain needs the artifact's language model part {artifact / 'llm'}: add it with "
                            f"'eiad export llm ... --out {artifact}', or run the demo without --explain")
    return manifest


def find_line(line: Path) -> LineFiles:
    """The synthetic line's video + ground truth in `line` (or `line`/stream); DataError otherwise."""
    import cv2

    line = Path(line)
    for folder in (line / "stream", line):
        video = next((folder / n for n in VIDEO_NAMES if (folder / n).is_file()), None)
        if video is not None and (folder / SIDECAR_NAME).is_file():
            break
    else:
        raise DataError(f"no synthetic line at {line} (expected {line / 'stream' / 'line.avi'} and "
                        f"{SIDECAR_NAME} beside it): generate one with 'eiad data synth --out {line}'")
    truth = read_truth(folder / SIDECAR_NAME)
    capture = cv2.VideoCapture(str(video))
    try:
        ok, image = capture.read()
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()
    if not ok or image is None:
        raise DataError(f"OpenCV cannot read a frame from {video}: regenerate it with 'eiad data synth --out {line} --force'")
    if not truth:
        raise DataError(f"{folder / SIDECAR_NAME} is empty: regenerate the line with 'eiad data synth --out {line} --force'")
    return LineFiles(folder, video, folder / SIDECAR_NAME, truth, fps if fps > 0 else 10.0, (image.shape[1], image.shape[0]))


class Shots:
    """What the demo camera took, shared by every (re)opened DemoCamera: the ground truth of
    frame id k is `truth[k]` (frame ids are contiguous per source, across restarts)."""

    def __init__(self, total: int, fps: float) -> None:
        self.total = total
        self.period_s = 1.0 / fps if fps > 0 else 0.0
        self.truth: list[dict | None] = []
        self.start: float | None = None
        self.late = 0  # ticks the camera could not keep because the station's queue was full


class DemoCamera:
    """The synthetic line as a triggered camera: paced, looped, `shots.total` frames then ends.

    Ticks are absolute (start + k/fps): a late read does not shift later ticks; a read
    more than one period late (the queue blocked it) counts in `shots.late`.
    """

    def __init__(self, source_id: str, line: LineFiles, shots: Shots) -> None:
        self.source_id = source_id
        self._inner = SyntheticLineSource(source_id, line.video, line.truth_path, loop=True)
        self._video = line.video
        self._shots = shots

    def open(self) -> None:
        self._inner.open()
        if self._shots.start is None:
            self._shots.start = time.perf_counter()

    def read(self) -> Capture | None:
        shots = self._shots
        k = len(shots.truth)
        if k >= shots.total:
            return None
        if shots.period_s:
            tick, now = shots.start + k * shots.period_s, time.perf_counter()
            if tick > now:
                time.sleep(tick - now)
            elif now - tick > shots.period_s:
                shots.late += 1
        capture = self._inner.read()
        if capture is None:
            raise SourceError(f"the line video {self._video} gave no frame")
        shots.truth.append(capture.truth)
        return capture

    def close(self) -> None:
        self._inner.close()


class Recorder:
    """Extra station sink: what the station produced, with its stage stamps.

    Called on the pipeline thread after the MQTT sink, so its own stamp is when the outbox
    commit returned; explanations arrive from the explainer thread (lock)."""

    def __init__(self) -> None:
        self.results: dict[str, dict] = {}
        self.explained: dict[str, str] = {}
        self._lock = threading.Lock()

    def handle(self, result) -> None:
        stamps = {**result.stamps_ns, "outboxed": time.monotonic_ns()}
        with self._lock:
            self.results[result.inspection_id] = {"frame_id": result.frame_id, "sequence": result.sequence,
                                                  "verdict": result.verdict, "stamps": stamps}

    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        with self._lock:
            self.explained[inspection_id] = text

    def count(self, verdict: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.results.values() if verdict is None or r["verdict"] == verdict)

    def close(self) -> None:
        pass


def station_config(opts: DemoOptions, line: LineFiles, broker: LocalBroker, workdir: Path, frames: int) -> StationConfig:
    """The demo station: one synthetic camera, MQTT to the local broker, a throw-away outbox."""
    explainer = None
    if opts.explain:
        llm = json.loads((Path(opts.artifact) / "llm" / "llm_config.json").read_text(encoding="utf-8"))
        have = llm.get("precisions", [])
        precision = next((p for p in ("int8", "int4", "fp32") if p in have), "int8")
        # Backlog as long as the run: the demo shows every NG part explained, none dropped.
        explainer = {"mode": "NG", "precision": precision, "backlog_max": max(1, frames)}
    return StationConfig.model_validate({
        "station_id": "demo", "line_id": "synthline", "artifact": str(Path(opts.artifact).resolve()),
        "sources": [{"kind": "synthetic", "id": "cam0", "path": str(line.video), "truth": str(line.truth_path), "loop": True}],
        "frames": {"wrong_size": "resize"}, "metrics": {"enabled": False}, "sequence_file": None,
        "mqtt": {"host": broker.host, "port": broker.port, "protocol": broker.protocol, "client_id": "eiad-demo-station",
                 "publish_masks": "ng", "close_timeout_s": 15.0},
        # A fresh outbox: one left by an earlier demo would replay its verdicts to this PLC.
        "outbox": {"path": str(workdir / "outbox.sqlite3")},
        "explainer": explainer,
    })


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
    with logging_redirect_tqdm(), tempfile.TemporaryDirectory(prefix="eiad-demo-") as work, \
            start_broker(opts.broker) as broker:  # type: ignore[arg-type]
        config = station_config(opts, line, broker, Path(work), frames)
        topics = Topics(config.mqtt.topic_prefix, config.line_id, config.station_id)
        view = LiveView(frames, enabled=opts.progress)
        plc = PlcSubscriber(broker.host, broker.port, broker.protocol, topics,
                            on_verdict=lambda payload, ns: view.verdict(payload.get("verdict", "?"), _ng_line(payload, shots))).start()
        try:
            elapsed_s = _run_station(config, recorder, shots, line)
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
    summary["overlays"] = write_overlays(out / "overlays", line, shots, recorder, received, opts.overlays)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _run_station(config: StationConfig, recorder: Recorder, shots: Shots, line: LineFiles) -> float:
    """The real station (build_station) with the demo camera; returns the run's seconds."""
    from edge.app import build_station
    from edge.pipeline import Pipeline
    from edge.sources.watchdog import SourceSet

    station = build_station(config, {"demo": recorder})
    sources = SourceSet(events=station.metrics)
    sources.add("cam0", lambda: DemoCamera("cam0", line, shots), "block", 4, None, stall_timeout_s=30.0)
    station.pipeline = Pipeline(config.station_id, sources, station.runner, station.sinks, config.thresholds, station.metrics,
                                config.batching.max_batch, config.batching.max_wait_ms, config.frames.wrong_size)
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
            _wait(lambda: len(recorder.explained) >= recorder.count("NG"), timeout_s=30.0 + 5.0 * recorder.count("NG"), stop=stop)
    finally:
        station.close()  # flushes the outbox, publishes 'offline'
        app_log.setLevel(level)
        restore()
    return time.perf_counter() - started


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
    truth = shots.truth[frame_id] if 0 <= frame_id < len(shots.truth) else None
    said = f"truth {truth.get('label', '?')} {truth.get('defect') or ''}".rstrip() if truth else "no truth"
    return (f"#{payload.get('sequence')} frame {frame_id}: NG score {float(payload.get('score', 0)):.3f} "
            f"{payload.get('defect_class') or '-'} ({len(payload.get('regions', []))} region(s))  [{said}]")


def truth_mask(truth: dict | None, line: LineFiles) -> np.ndarray | None:
    """The ground-truth defect mask (bool, frame size) of a truth record, None for OK parts."""
    import cv2

    if not truth or truth.get("label") != "NG":
        return None
    if truth.get("mask"):
        mask = cv2.imread(str(line.folder / truth["mask"]), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise DataError(f"ground-truth mask {line.folder / truth['mask']} is missing or unreadable: regenerate the line")
        return mask > 0
    box = truth.get("bbox_xyxy") or truth.get("box_xyxy")  # sidecars without masks: the box is the truth
    if not box:
        return None
    mask = np.zeros((line.size_wh[1], line.size_wh[0]), bool)
    x1, y1, x2, y2 = (int(v) for v in box)
    mask[y1:y2, x1:x2] = True
    return mask


def received_summary(received: Received) -> dict:
    return {"verdicts": len(received.verdicts), "masks": len(received.masks), "explanations": len(received.explanations),
            "duplicates_dropped": received.duplicates, "undecodable": received.undecodable}


# ---- scoring -------------------------------------------------------------------------------

def percentiles_ms(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {}
    a = np.asarray(values_ms, float)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"count": int(a.size), "p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
            "max": round(float(a.max()), 3), "mean": round(float(a.mean()), 3)}


def latency_summary(recorder: Recorder, received: Received) -> dict:
    """Capture -> verdict received by the PLC, and each stage between, in ms."""
    per_stage: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    total: list[float] = []
    for inspection_id, record in recorder.results.items():
        stamps = dict(record["stamps"])
        if inspection_id in received.verdict_ns:
            stamps["received"] = received.verdict_ns[inspection_id]
            total.append((stamps["received"] - stamps["captured"]) / 1e6)
        for name, start, end in STAGES:
            if start in stamps and end in stamps:  # a REJECTED frame skips inference
                per_stage[name].append((stamps[end] - stamps[start]) / 1e6)
    return {"capture_to_plc": percentiles_ms(total), "stages": {k: percentiles_ms(v) for k, v in per_stage.items()}}


def score_image(pairs: list[tuple[dict | None, str]]) -> dict:
    """Image-level scores from (truth record, verdict the PLC received) pairs.

    accuracy = correct / scored (a REJECTED part counts as wrong: it was not inspected);
    miss rate = NG parts called OK / NG parts (escapes); overkill rate = OK parts called NG
    / OK parts (good parts thrown away)."""
    confusion = {t: {v: 0 for v in ("OK", "NG", "REJECTED")} for t in ("OK", "NG")}
    for truth, verdict in pairs:
        label = (truth or {}).get("label")
        if label in confusion and verdict in confusion[label]:
            confusion[label][verdict] += 1
    ok, ng = confusion["OK"], confusion["NG"]
    scored = sum(ok.values()) + sum(ng.values())
    ratio = lambda a, b: round(a / b, 4) if b else None  # noqa: E731
    return {"scored": scored, "unscored": len(pairs) - scored, "confusion": confusion,
            "accuracy": ratio(ok["OK"] + ng["NG"], scored), "miss_rate": ratio(ng["OK"], sum(ng.values())),
            "overkill_rate": ratio(ok["NG"], sum(ok.values())), "rejected": ok["REJECTED"] + ng["REJECTED"]}


def iou(predicted: np.ndarray | None, truth: np.ndarray) -> float:
    """IoU of a published mask (any size; resized to the truth's) with a truth mask; no mask -> 0."""
    import cv2

    if predicted is None:
        return 0.0
    if predicted.shape != truth.shape:
        predicted = cv2.resize(predicted, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_NEAREST)
    p = predicted > 0
    union = np.logical_or(p, truth).sum()
    return float(np.logical_and(p, truth).sum() / union) if union else 1.0


def score_pixels(items: list[tuple[np.ndarray | None, np.ndarray]]) -> dict:
    """Mean IoU over the NG parts (a part with no published mask scores 0) and over those with one."""
    values = [iou(p, t) for p, t in items]
    detected = [iou(p, t) for p, t in items if p is not None]
    return {"ng_parts": len(items), "with_mask": len(detected),
            "mean_iou": round(float(np.mean(values)), 4) if values else None,
            "mean_iou_with_mask": round(float(np.mean(detected)), 4) if detected else None}


def build_summary(opts: DemoOptions, manifest: Manifest, line: LineFiles, broker: LocalBroker, frames: int, fps: float,
                  shots: Shots, recorder: Recorder, received: Received, elapsed_s: float) -> dict:
    ordered = sorted(recorder.results.items(), key=lambda kv: kv[1]["sequence"])
    pairs, pixel_items, classes = [], [], [0, 0]
    for inspection_id, record in ordered:
        payload = received.verdicts.get(inspection_id)
        if payload is None:
            continue
        truth = _truth_of(shots, record["frame_id"])
        pairs.append((truth, payload["verdict"]))
        gt = truth_mask(truth, line)
        if gt is not None:
            pixel_items.append((received.masks.get(inspection_id), gt))
        if truth and truth.get("label") == "NG" and payload["verdict"] == "NG" and truth.get("defect"):
            classes[0] += 1
            classes[1] += int(payload.get("defect_class") == truth["defect"])
    arrivals = [received.verdict_ns[i] for i in recorder.results if i in received.verdict_ns]
    firsts = [r["stamps"]["captured"] for r in recorder.results.values() if "captured" in r["stamps"]]
    span_s = (max(arrivals) - min(firsts)) / 1e9 if arrivals and firsts else 0.0
    by_verdict: dict[str, int] = {}
    for payload in received.verdicts.values():
        by_verdict[payload["verdict"]] = by_verdict.get(payload["verdict"], 0) + 1
    explained = [{"inspection_id": i, "text": e.get("text", "")} for i, e in list(received.explanations.items())[:3]]
    return {
        "artifact": {"path": str(opts.artifact), "model_id": manifest.model_id, "input_px": [manifest.input.width, manifest.input.height]},
        "line": {"path": str(line.folder), "video": str(line.video), "frames_in_video": len(line.truth), "frame_px": list(line.size_wh)},
        "broker": {"kind": broker.kind, "detail": broker.detail, "mqtt": broker.protocol},
        "frames": recorder.count(), "frames_requested": frames, "fps_target": fps, "late_triggers": shots.late,
        "verdicts_received": len(received.verdicts), "verdicts_by_kind": by_verdict, "received": received_summary(received),
        "all_received": len(received.verdicts) == recorder.count() == frames,
        "elapsed_s": round(elapsed_s, 3), "throughput_fps": round(len(arrivals) / span_s, 2) if span_s > 0 else None,
        "latency_ms": latency_summary(recorder, received),
        "accuracy": {"image": score_image(pairs), "pixel": score_pixels(pixel_items),
                     "class_agreement": round(classes[1] / classes[0], 4) if classes[0] else None},
        "explanations": {"enabled": opts.explain, "produced": len(recorder.explained),
                         "received": len(received.explanations), "examples": explained},
    }


def _truth_of(shots: Shots, frame_id: int) -> dict | None:
    return shots.truth[frame_id] if 0 <= frame_id < len(shots.truth) else None


# ---- overlays and the printed summary -------------------------------------------------------

def write_overlays(folder: Path, line: LineFiles, shots: Shots, recorder: Recorder, received: Received, limit: int) -> list[str]:
    """PNGs of the first `limit` NG verdicts the PLC received: the frame, the published mask in
    red, the ground-truth outline in green, the verdict and the truth as text."""
    import cv2

    chosen = [(i, r) for i, r in sorted(recorder.results.items(), key=lambda kv: kv[1]["sequence"])
              if received.verdicts.get(i, {}).get("verdict") == "NG"][:max(0, limit)]
    if not chosen:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {_video_index(_truth_of(shots, r["frame_id"]), r["frame_id"], len(line.truth)) for _, r in chosen}
    images = _read_frames(line.video, wanted)
    written = []
    for inspection_id, record in chosen:
        truth = _truth_of(shots, record["frame_id"])
        image = images.get(_video_index(truth, record["frame_id"], len(line.truth)))
        if image is None:
            continue
        path = folder / f"ng_{record['sequence']:06d}.png"
        cv2.imwrite(str(path), overlay(image, received.masks.get(inspection_id), truth_mask(truth, line),
                                       received.verdicts[inspection_id], truth))
        written.append(str(path))
    return written


def overlay(image: np.ndarray, mask: np.ndarray | None, truth: np.ndarray | None, payload: dict, record: dict | None) -> np.ndarray:
    """One overlay picture (BGR), scaled up so that small frames stay readable."""
    import cv2

    h, w = image.shape[:2]
    scale = max(1, int(np.ceil(320 / max(h, w))))
    big = cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    if mask is not None:
        m = cv2.resize(mask, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST) > 0
        big[m] = (0.45 * big[m] + 0.55 * np.array([0, 0, 255])).astype(np.uint8)
    if truth is not None:
        t = cv2.resize(truth.astype(np.uint8) * 255, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(t, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(big, contours, -1, (0, 255, 0), 2)
    said = f"truth {record.get('label', '?')} {record.get('defect') or ''}" if record else "no ground truth"
    lines = [f"#{payload.get('sequence')} {payload.get('verdict')} score {float(payload.get('score', 0)):.3f} "
             f"{payload.get('defect_class') or ''}", f"{said}   red: published mask, green: truth"]
    band = np.zeros((22 * len(lines) + 6, big.shape[1], 3), np.uint8)
    for k, text in enumerate(lines):
        cv2.putText(band, text, (4, 18 + 22 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([band, big])


def _video_index(truth: dict | None, frame_id: int, video_frames: int) -> int:
    for key in ("frame_index", "frame", "index"):
        if truth and key in truth:
            return int(truth[key])
    return frame_id % max(1, video_frames)


def _read_frames(video: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    import cv2

    capture, found, index = cv2.VideoCapture(str(video)), {}, 0
    try:
        while index <= max(wanted, default=-1):
            ok, image = capture.read()
            if not ok:
                break
            if index in wanted:
                found[index] = image
            index += 1
    finally:
        capture.release()
    return found


def format_summary(s: dict) -> str:
    """The summary as the terminal shows it."""
    img, pix = s["accuracy"]["image"], s["accuracy"]["pixel"]
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    lat = s["latency_ms"]
    row = lambda name, p: f"  {name:<22}{p.get('p50', float('nan')):>9.2f}{p.get('p95', float('nan')):>9.2f}{p.get('p99', float('nan')):>9.2f}"  # noqa: E731
    c = img["confusion"]
    lines = [
        f"model {s['artifact']['model_id']} on {s['line']['frames_in_video']}-frame line {s['line']['path']}; broker {s['broker']['kind']} ({s['broker']['detail']}, MQTT {s['broker']['mqtt']})",
        f"frames {s['frames']} / requested {s['frames_requested']}; verdicts received by the PLC {s['verdicts_received']} "
        f"({'all' if s['all_received'] else 'MISSING SOME'}); duplicates dropped {s['received']['duplicates_dropped']}",
        f"throughput {s['throughput_fps'] or 0:.1f} frames/s (camera target {s['fps_target']:g} fps, {s['late_triggers']} late triggers); run {s['elapsed_s']:.1f} s",
        f"latency ms                 p50      p95      p99",
        row("capture -> PLC", lat["capture_to_plc"]),
        *[row(f"  {name}", p) for name, p in lat["stages"].items() if p],
        f"accuracy {pct(img['accuracy'])}  miss rate {pct(img['miss_rate'])}  overkill rate {pct(img['overkill_rate'])}  (scored {img['scored']}, rejected {img['rejected']})",
        f"  truth \\ verdict    OK     NG    REJ",
        f"  OK             {c['OK']['OK']:>6} {c['OK']['NG']:>6} {c['OK']['REJECTED']:>6}",
        f"  NG             {c['NG']['OK']:>6} {c['NG']['NG']:>6} {c['NG']['REJECTED']:>6}",
        f"mask IoU on NG parts: mean {pix['mean_iou'] if pix['mean_iou'] is not None else 'n/a'} over {pix['ng_parts']} "
        f"(with a mask: {pix['mean_iou_with_mask'] if pix['mean_iou_with_mask'] is not None else 'n/a'} over {pix['with_mask']})",
    ]
    if s["explanations"]["enabled"]:
        e = s["explanations"]
        lines.append(f"explanations produced {e['produced']}, received {e['received']}")
        lines += [f"  {x['inspection_id']}: {x['text']}" for x in e["examples"]]
    lines.append(f"overlays: {len(s['overlays'])} PNG in {Path(s['overlays'][0]).parent}" if s["overlays"] else "overlays: none (no NG verdict)")
    return "\n".join(lines)
