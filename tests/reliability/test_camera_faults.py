"""Camera faults through the real loop (ONNX Runtime on the tiny artifact): corrupt frames
(truncated, wrong size, wrong channels, wrong dtype, empty, all-black), a resolution jump
mid-stream, a camera that stalls and one that vanishes. The loop keeps going, each bad
frame gets a REJECTED verdict with its reason, published over MQTT; never a silent OK."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from benchmarks.stand_ins.artifact import frame_with_patch, grey_frame
from edge.health.metrics import Metrics
from edge.pipeline import Pipeline
from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
from edge.sinks.mqtt.config import OutboxSettings
from edge.sinks.mqtt.outbox.store import Outbox
from edge.sinks.mqtt.sink import MqttSink
from edge.sources.base import Capture
from edge.sources.watchdog import SourceSet
from eiad.errors import SourceError
from tests.reliability.conftest import sink_settings
from tests.support_edge.fakes import CollectingSink, HangingSource, ListSource
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)

GOOD = grey_frame()
NG = frame_with_patch((10, 10, 20, 20))
HOSTILE = {  # name -> (image, what the reason must mention)
    "truncated": (np.frombuffer(GOOD.tobytes()[:5000], np.uint8), "shape"),
    "half_height": (GOOD[:32], "64x32"),
    "grey_2d": (GOOD[:, :, 0].copy(), "shape"),
    "four_channels": (np.dstack([GOOD, GOOD[:, :, :1]]), "shape"),
    "uint16": (GOOD.astype(np.uint16) * 256, "dtype"),
    "float": (GOOD.astype(np.float32) / 255, "dtype"),
    "empty": (np.zeros((0, 0, 3), np.uint8), "empty"),
}


@pytest.fixture(scope="module")
def runner(tiny_artifact):  # noqa: F811
    return OnnxRuntimeRunner(tiny_artifact, providers=["CPUExecutionProvider"])


def run(sources: SourceSet, runner, sinks: dict, timeout_s: float = 20.0, **kwargs) -> Pipeline:
    pipeline = Pipeline("st1", sources, runner, sinks, **kwargs)
    stop = threading.Event()
    timer = threading.Timer(timeout_s, stop.set)  # a safety net: the test fails on counts, never hangs
    timer.start()
    pipeline.run(stop)
    timer.cancel()
    return pipeline


class VanishingSource(ListSource):
    """Delivers its frames, then the device disappears (read raises)."""

    def read(self):
        capture = super().read()
        if capture is None:
            raise SourceError(f"{self.source_id}: device unplugged (test)")
        return capture


@pytest.mark.mqtt
def test_hostile_frames_are_rejected_with_reasons_published_and_the_loop_goes_on(
    runner, mosquitto_factory, subscriber_factory, tmp_path
):
    # given a camera interleaving every kind of corrupt frame with good ones, into a real MQTT sink
    broker = mosquitto_factory(persistence=False)
    sub = subscriber_factory(broker.port, "eiad/l1/st1/verdict")
    images, expect = [], []
    for _name, (image, hint) in HOSTILE.items():
        images += [image, GOOD, NG]
        expect += [("REJECTED", hint), ("OK", ""), ("NG", "")]
    sources = SourceSet(check_interval_s=0.05)
    sources.add("cam", lambda: ListSource("cam", images))
    sink = MqttSink(sink_settings(broker.port), Outbox(OutboxSettings(path=tmp_path / "o.db")))
    # when the station runs over them
    pipeline = run(sources, runner, {"mqtt": sink})
    assert sink.flush(10)
    assert sub.wait_for(lambda m: len(m) >= len(images), 10)
    got = [json.loads(m.payload) for m in sub.snapshot("/verdict")]
    # then one verdict per frame, in order, each bad frame REJECTED with a reason that says why
    assert [v["sequence"] for v in got] == list(range(1, len(images) + 1))
    for v, (verdict, hint) in zip(got, expect):
        assert v["verdict"] == verdict, (v, verdict)
        assert hint in v["reason"], v["reason"]
    assert not any(v["mask_published"] for v in got if v["verdict"] == "REJECTED")
    assert pipeline.summary.verdicts == {"REJECTED": len(HOSTILE), "OK": len(HOSTILE), "NG": len(HOSTILE)}
    sink.close()


def test_an_all_black_frame_is_never_a_silent_ok(runner):
    # given a covered lens / lights off: an all-black frame, and an all-white one
    sources = SourceSet(check_interval_s=0.05)
    black, white = np.zeros_like(GOOD), np.full_like(GOOD, 255)
    sources.add("cam", lambda: ListSource("cam", [black, white, GOOD]))
    sink = CollectingSink()
    run(sources, runner, {"c": sink})
    # then neither passes as a good part
    assert all(r.verdict != "OK" for r in sink.results[:2]), [(r.verdict, r.reason) for r in sink.results]
    assert sink.results[2].verdict == "OK"


@pytest.mark.parametrize("policy", ["reject", "resize"])
def test_a_resolution_jump_mid_stream_is_handled_by_the_configured_policy(runner, policy):
    # given a camera that switches from 64x64 to 128x96 after three frames (someone changed its mode)
    big_ng = frame_with_patch((40, 30, 60, 50), height=96, width=128)
    frames = [GOOD, NG, GOOD, big_ng, big_ng, grey_frame(96, 128)]
    sources = SourceSet(check_interval_s=0.05)
    sources.add("cam", lambda: ListSource("cam", frames))
    sink = CollectingSink()
    run(sources, runner, {"c": sink}, wrong_size=policy)
    verdicts = [r.verdict for r in sink.results]
    # then the loop never stops; reject: REJECTED naming both sizes; resize: inspected, mask at frame size
    assert verdicts[:3] == ["OK", "NG", "OK"] and len(verdicts) == 6
    if policy == "reject":
        assert verdicts[3:] == ["REJECTED"] * 3
        assert "128x96" in sink.results[3].reason and "64x64" in sink.results[3].reason
    else:
        assert verdicts[3:] == ["NG", "NG", "OK"]
        assert sink.results[3].mask.shape == (96, 128)
        x1, y1, x2, y2 = sink.results[3].regions[0].box_xyxy
        assert abs(x1 - 40) <= 2 and abs(y1 - 30) <= 2 and abs(x2 - 60) <= 2 and abs(y2 - 50) <= 2


def test_a_vanishing_camera_is_reopened_and_a_stalled_one_restarted(runner):
    # given one camera that is unplugged after 3 frames, and one whose read hangs after 2
    release = threading.Event()
    opened = {"usb": 0, "rtsp": 0}

    def usb():
        opened["usb"] += 1
        return VanishingSource("usb", [NG] * 3) if opened["usb"] == 1 else ListSource("usb", [GOOD] * 2)

    def rtsp():
        opened["rtsp"] += 1
        if opened["rtsp"] == 1:
            return HangingSource("rtsp", GOOD, before_hang=2, release=release)
        release.set()  # the hung read returns late: its frame must be discarded
        return ListSource("rtsp", [NG] * 2)

    metrics = Metrics()
    sources = SourceSet(events=metrics, check_interval_s=0.05)
    sources.add("usb", usb, stall_timeout_s=5.0, backoff_initial_s=0.05)
    sources.add("rtsp", rtsp, stall_timeout_s=0.3, backoff_initial_s=0.05)
    sink = CollectingSink()
    run(sources, runner, {"c": sink})
    by_source = {s: [r.verdict for r in sink.results if r.source_id == s] for s in ("usb", "rtsp")}
    # then both are back, every delivered frame has one verdict, frame ids continue, no late frame
    assert by_source == {"usb": ["NG"] * 3 + ["OK"] * 2, "rtsp": ["OK"] * 2 + ["NG"] * 2}
    assert [r.frame_id for r in sink.results if r.source_id == "rtsp"] == [0, 1, 2, 3]
    assert metrics.count("restarts", "usb/error") == 1 and metrics.count("restarts", "rtsp/stall") == 1
    assert [r.sequence for r in sink.results] == list(range(1, 10))


def test_a_source_delivering_none_images_never_crashes_the_loop(runner):
    # given a driver that hands over a Capture without pixels next to good frames
    class NoPixels(ListSource):
        def read(self):
            capture = super().read()
            if capture is not None and self._index == 2:
                return Capture(image=np.array([], np.uint8))
            return capture

    sources = SourceSet(check_interval_s=0.05)
    sources.add("cam", lambda: NoPixels("cam", [GOOD, GOOD, GOOD]))
    sink = CollectingSink()
    run(sources, runner, {"c": sink})
    assert [r.verdict for r in sink.results] == ["OK", "REJECTED", "OK"]
    assert sink.results[1].reason == "empty frame"
