"""A whole station (YAML -> app -> synthetic line -> ONNX Runtime -> MQTT) against a real Mosquitto."""

from __future__ import annotations

import json
import shutil
import threading

import cv2
import numpy as np
import pytest

from benchmarks.stand_ins.frames import write_synthetic_line
from benchmarks.stand_ins.subscriber import Subscriber
from edge.app import run_station
from edge.config import load_station_config
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)

pytestmark = pytest.mark.mqtt

STATION = """\
station_id: st-1
line_id: line-a
artifact: artifact
sources:
  - {{kind: synthetic, id: line, path: line/line.mkv, policy: triggered, queue_capacity: 2}}
batching: {{max_batch: 2, max_wait_ms: 1}}
metrics: {{enabled: true, host: 127.0.0.1, port: 0}}
mqtt: {{host: 127.0.0.1, port: {port}, publish_masks: ng}}
outbox: {{path: state/outbox.sqlite3}}
sequence_file: state/sequence.state
"""


def make_station(tmp_path, artifact, port: int, count: int):
    shutil.copytree(artifact, tmp_path / "artifact")
    _, truths = write_synthetic_line(tmp_path / "line", count=count)
    path = tmp_path / "station.yaml"
    path.write_text(STATION.format(port=port))
    return load_station_config(path), truths


def test_subscriber_gets_one_verdict_per_frame_with_contiguous_sequences(tmp_path, tiny_artifact, mosquitto):
    # given a station on a synthetic line of 15 parts (5 NG) and a PLC-like subscriber
    config, truths = make_station(tmp_path, tiny_artifact, mosquitto.port, 15)
    subscriber = Subscriber(mosquitto.port, "eiad/line-a/st-1/#", client_id="plc")
    assert subscriber.subscribed.wait(5)
    try:
        # when the station runs to the end of the video (close() flushes the outbox)
        summary = run_station(config, threading.Event())
        assert subscriber.wait_for(lambda msgs: len([m for m in msgs if m.topic.endswith("/verdict")]) >= 15, 10)
        verdicts = [json.loads(m.payload) for m in subscriber.snapshot("/verdict")]
        masks = subscriber.snapshot("/mask")
    finally:
        subscriber.close()
    # then exactly one verdict per frame, numbered 1..15, matching the ground truth
    assert summary.frames == 15 and len(verdicts) == 15
    assert sorted(v["sequence"] for v in verdicts) == list(range(1, 16))
    assert len({v["inspection_id"] for v in verdicts}) == 15
    by_frame = {v["frame_id"]: v for v in verdicts}
    assert [by_frame[i]["verdict"] for i in range(15)] == [t["label"] for t in truths]
    ng = by_frame[3]
    assert ng["defect_class"] == "bright_spot" and ng["regions"] and ng["mask_published"] is True
    # and the NG masks decode to the frame size
    assert len(masks) == 5
    mask = cv2.imdecode(np.frombuffer(masks[0].payload, np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255} and (mask == 255).any()


def test_numbering_continues_after_a_restart(tmp_path, tiny_artifact, mosquitto):
    config, _ = make_station(tmp_path, tiny_artifact, mosquitto.port, 4)
    first = run_station(config, threading.Event())
    second = run_station(config, threading.Event())
    assert (first.last_sequence, second.last_sequence) == (4, 8)
