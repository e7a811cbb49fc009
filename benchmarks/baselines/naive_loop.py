"""The baseline a user would write first: one thread, per frame read -> model -> publish.

    for each tick: for each camera:
        ok, frame = capture.read()                   # OpenCV, from a video file per camera
        frame = cv2.resize(frame, model size)        # if needed
        outputs = model(frame[None])                 # the model, batch 1
        verdict = "NG" if score >= threshold else "OK"
        client.publish(topic, json.dumps({...}), qos=1).wait_for_publish()   # paho, blocking

No queues, no batching, no outbox: a publish waits for the broker's PUBACK before the next
frame, and nothing survives a broker outage. The model is the artifact's ONNX graph in a
plain `onnxruntime.InferenceSession` (the artifact holds no torch weights; with a torch
checkpoint the same loop would call the torch module instead: an integration point).
Latency per frame = PUBACKed verdict received by the subscriber - the camera's tick, so a
loop that falls behind accumulates delay exactly as a camera buffer would.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt

from benchmarks.loop_harness import VerdictListener
from benchmarks.stats import cdf_points, check_budget, ratio, summarize_ms

log = logging.getLogger(__name__)


def _write_video(frames: list[np.ndarray], path: Path, fps: float) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), max(fps, 1.0), (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def bench_naive(artifact: Path, manifest, frames: list[np.ndarray], load, host: str, port: int) -> dict:
    """Run the naive loop at the same load (cameras x fps x duration) and summarise it."""
    import onnxruntime as ort

    from edge.runners.base import vision_file

    session = ort.InferenceSession(str(Path(artifact) / vision_file(manifest)), providers=["CPUExecutionProvider"])
    size = (manifest.input.width, manifest.input.height)
    topic = f"eiad-bench-naive/{time.monotonic_ns()}/verdict"
    listener = VerdictListener(host, port, topic)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"naive-{time.monotonic_ns()}")
    client.connect(host, port)
    client.loop_start()
    ticks: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="eiad-bench-naive-") as tmp:
        try:
            listener.ready.wait(10.0)
            captures = [
                cv2.VideoCapture(str(_write_video(frames, Path(tmp) / f"cam{i}.avi", load.fps_per_camera)))
                for i in range(load.cameras)
            ]
            period_ns = int(1e9 / load.fps_per_camera) if load.fps_per_camera > 0 else 0
            start = time.monotonic_ns()
            n = 0
            while True:  # the same tick schedule as the station's paced cameras
                tick = start + n * period_ns
                if (tick if period_ns else time.monotonic_ns()) - start >= load.duration_s * 1e9:
                    break
                if tick > time.monotonic_ns():
                    time.sleep((tick - time.monotonic_ns()) / 1e9)
                for cam, capture in enumerate(captures):
                    ok, frame = capture.read()
                    if not ok:  # end of the clip: rewind, as a looping camera would
                        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        ok, frame = capture.read()
                    if frame.shape[1::-1] != size:
                        frame = cv2.resize(frame, size)
                    outputs = session.run(None, {manifest.input.name: frame[None]})
                    named = dict(zip([o.name for o in session.get_outputs()], outputs))
                    score = float(named["image_score"][0])
                    inspection_id = f"naive-{cam}-{n}"
                    ticks[inspection_id] = tick if period_ns else time.monotonic_ns()
                    payload = {
                        "inspection_id": inspection_id,
                        "verdict": "NG" if score >= manifest.thresholds.image_score else "OK",
                        "score": score,
                    }
                    client.publish(topic, json.dumps(payload), qos=1).wait_for_publish()
                n += 1
            listener.wait_for(set(ticks), 10.0)
        finally:
            for capture in captures if "captures" in locals() else []:
                capture.release()
            client.disconnect()
            client.loop_stop()
            listener.close()
    latencies = np.asarray([(listener.received[i] - t) / 1e6 for i, t in ticks.items() if i in listener.received])
    arrivals = [listener.received[i] for i in ticks if i in listener.received]
    span_s = (max(arrivals) - min(ticks.values())) / 1e9 if arrivals else float("nan")
    summary = summarize_ms(latencies)
    lost = len(ticks) - len(latencies)
    throughput = len(latencies) / span_s if span_s > 0 else float("nan")
    config = {
        "name": f"naive loop {load.cameras}x{load.fps_per_camera:g}fps",
        "group": "baseline",
        "series": "naive",
        "cameras": load.cameras,
        "fps_per_camera": load.fps_per_camera,
        "latency_ms": summary.to_dict(),
        "cdf_ms": cdf_points(latencies),
        "throughput_per_s": throughput,
        "drops": lost,
        "notes": ["OpenCV read + ONNX Runtime session + paho publish QoS 1, one thread, per frame"],
    }
    if load.fps_per_camera > 0:
        config["budget"] = check_budget(
            summary.p99_ms, throughput, load.budget_ms, load.fps_per_camera, load.cameras, lost
        ).to_dict()
    return config


def naive_comparisons(naive: dict, station: dict, station_label: str) -> list[dict]:
    """The naive loop beside the station's loop: p99 latency ratio and throughput ratio."""
    return [
        {
            "name": f"naive loop p99 / {station_label} p99",
            "metric": "latency ratio",
            "ratio": ratio(naive["latency_ms"]["p99_ms"], station["latency_ms"]["p99_ms"]),
            "goal": "-",
        },
        {
            "name": f"{station_label} / naive loop",
            "metric": "throughput ratio",
            "ratio": ratio(station["throughput_per_s"], naive["throughput_per_s"]),
            "goal": "-",
        },
    ]
