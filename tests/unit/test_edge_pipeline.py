"""The station loop with real ONNX Runtime on the tiny artifact, fake sources, collecting sinks."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from benchmarks.stand_ins.artifact import frame_with_patch, grey_frame
from edge.health.metrics import Metrics
from edge.pipeline import Pipeline
from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
from edge.sources.watchdog import SourceSet
from tests.support_edge.fakes import CollectingSink, FailingOpenSource, FailingSink, HangingSource, ListSource
from tests.support_edge.fixtures import nan_artifact, tiny_artifact  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def runner(tiny_artifact):
    return OnnxRuntimeRunner(tiny_artifact, providers=["CPUExecutionProvider"])


class SlowRunner:
    """The real runner, made slower than the cameras."""

    def __init__(self, inner, delay_s: float) -> None:
        self.manifest, self.max_batch, self.provider = inner.manifest, inner.max_batch, inner.provider
        self.fixed_batch = inner.fixed_batch
        self._inner, self._delay_s = inner, delay_s

    def run(self, batch):
        time.sleep(self._delay_s)
        return self._inner.run(batch)

    def close(self):
        pass


def run_pipeline(sources: SourceSet, runner, sinks, timeout_s: float = 20.0, **kwargs) -> Pipeline:
    pipeline = Pipeline("st1", sources, runner, sinks, **kwargs)
    stop = threading.Event()
    threading.Timer(timeout_s, stop.set).start()  # a safety net: the test fails on counts, never hangs
    pipeline.run(stop)
    stop.set()
    return pipeline


def patterned(n: int) -> tuple[list[np.ndarray], list[str]]:
    """Every third frame has a white 6x6 patch (NG), the rest are grey (OK)."""
    images = [frame_with_patch((5 + i, 10, 11 + i, 16)) if i % 3 == 0 else grey_frame() for i in range(n)]
    return images, ["NG" if i % 3 == 0 else "OK" for i in range(n)]


def test_one_result_per_frame_with_contiguous_sequences_across_two_cameras(runner):
    # given two cameras and micro-batches of up to 4 frames
    images_a, expected_a = patterned(12)
    images_b, expected_b = patterned(9)
    sources = SourceSet()
    sources.add("camA", lambda: ListSource("camA", images_a), policy="block", queue_capacity=4)
    sources.add("camB", lambda: ListSource("camB", images_b), policy="block", queue_capacity=4)
    sink = CollectingSink()
    # when the loop runs to the end of both sources
    pipeline = run_pipeline(sources, runner, {"collect": sink}, max_batch=4, max_wait_ms=5)
    # then every frame has exactly one result, numbered 1..21 with no gap
    results = sink.results
    assert [r.sequence for r in results] == list(range(1, 22))
    for source, expected in (("camA", expected_a), ("camB", expected_b)):
        mine = sorted((r for r in results if r.source_id == source), key=lambda r: r.frame_id)
        assert [r.frame_id for r in mine] == list(range(len(expected)))
        assert [r.verdict for r in mine] == expected
    ng = next(r for r in results if r.source_id == "camA" and r.frame_id == 3)
    assert ng.regions[0].box_xyxy == (8, 10, 14, 16) and ng.regions[0].area_px == 36
    assert ng.defect_class == "bright_spot" and ng.mask.shape == (64, 64) and ng.features.shape == (16, 3)
    assert len({r.inspection_id for r in results}) == 21
    assert all(
        r.inspection_id.startswith(f"st1-{r.source_id}-") and r.inspection_id.endswith(f"-{r.frame_id}")
        for r in results
    )
    assert all(
        r.stamps_ns["captured"] <= r.stamps_ns["queued"] <= r.stamps_ns["dequeued"] <= r.stamps_ns["inferred"]
        for r in results
        if r.verdict != "REJECTED"
    )
    assert pipeline.summary.verdicts == {"NG": 7, "OK": 14} and pipeline.summary.last_sequence == 21


def test_bad_frames_are_rejected_with_a_reason_and_the_loop_goes_on(runner):
    images = [
        grey_frame(32, 32),
        np.zeros((64, 64), np.uint8),
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((64, 64, 3), np.float32),
        grey_frame(),
    ]
    sources = SourceSet()
    sources.add("cam", lambda: ListSource("cam", images))
    sink = CollectingSink()
    run_pipeline(sources, runner, {"c": sink}, wrong_size="reject")
    verdicts = [(r.verdict, r.reason) for r in sink.results]
    assert [v for v, _ in verdicts] == ["REJECTED"] * 4 + ["OK"]
    assert "32x32 px" in verdicts[0][1] and "wrong_size" in verdicts[0][1]
    assert "HxWx3" in verdicts[1][1] and verdicts[2][1] == "empty frame" and "float32" in verdicts[3][1]
    assert [r.sequence for r in sink.results] == [1, 2, 3, 4, 5]


def test_blank_frames_are_rejected_before_inference_with_the_measured_std(runner):
    # given a covered lens (black), lights off (near-black with sensor noise), a saturated
    # sensor (white), a textured good part, and a black frame with a real bright defect
    rng = np.random.default_rng(3)
    dark = rng.integers(0, 3, (64, 64, 3), dtype=np.uint8)  # std ~0.8 grey levels
    textured = (grey_frame().astype(np.int16) + rng.integers(-6, 7, (64, 64, 3))).astype(np.uint8)
    black_with_defect = np.zeros((64, 64, 3), np.uint8)
    black_with_defect[30:34, 30:34] = 255  # 16 of 4096 pixels: std ~16, not blank
    images = [np.zeros((64, 64, 3), np.uint8), dark, np.full((64, 64, 3), 255, np.uint8), textured, black_with_defect]
    sources = SourceSet()
    sources.add("cam", lambda: ListSource("cam", images))
    sink = CollectingSink()
    # when the station rejects frames whose pixel std is below 2 grey levels
    run_pipeline(sources, runner, {"c": sink}, blank_max_std=2.0)
    verdicts = [(r.verdict, r.reason) for r in sink.results]
    # then the three blank frames are REJECTED with the measured std and the likely causes
    assert [v for v, _ in verdicts] == ["REJECTED"] * 3 + ["OK", "NG"], verdicts
    assert verdicts[0][1] == "frame is blank (std 0.00 < 2): lens covered, lights off or camera fault?"
    assert "frame is blank (std 0.8" in verdicts[1][1] or "frame is blank (std 0.7" in verdicts[1][1], verdicts[1]
    assert sink.results[0].mask is None and [r.sequence for r in sink.results] == [1, 2, 3, 4, 5]


def test_the_blank_check_is_off_at_zero(runner):
    sources = SourceSet()
    sources.add("cam", lambda: ListSource("cam", [grey_frame()]))
    sink = CollectingSink()
    run_pipeline(sources, runner, {"c": sink}, blank_max_std=0.0)
    assert [r.verdict for r in sink.results] == ["OK"]


def test_wrong_size_frames_are_resized_when_configured_and_mask_keeps_frame_size(runner):
    image = np.full((128, 96, 3), 128, np.uint8)
    image[20:60, 10:50] = 255
    sources = SourceSet()
    sources.add("cam", lambda: ListSource("cam", [image]))
    sink = CollectingSink()
    run_pipeline(sources, runner, {"c": sink}, wrong_size="resize")
    (result,) = sink.results
    assert result.verdict == "NG" and result.mask.shape == (128, 96)
    x1, y1, x2, y2 = result.regions[0].box_xyxy
    assert abs(x1 - 10) <= 2 and abs(y1 - 20) <= 2 and abs(x2 - 50) <= 2 and abs(y2 - 60) <= 2


def test_nan_outputs_reject_every_frame(nan_artifact):
    sources = SourceSet()
    sources.add("cam", lambda: ListSource("cam", [grey_frame(), frame_with_patch((1, 1, 9, 9))]))
    sink = CollectingSink()
    run_pipeline(sources, OnnxRuntimeRunner(nan_artifact), {"c": sink}, max_batch=2)
    assert [r.verdict for r in sink.results] == ["REJECTED", "REJECTED"]
    assert all("NaN/inf" in r.reason and r.mask is None for r in sink.results)


def test_a_failing_sink_is_counted_and_never_stops_the_loop(runner):
    images, _ = patterned(10)
    sources = SourceSet()
    sources.add("cam", lambda: ListSource("cam", images))
    failing, good = FailingSink(every=2), CollectingSink()
    pipeline = run_pipeline(sources, runner, {"mqtt": failing, "archive": good})
    assert len(good.results) == 10 and len(failing.results) == 5
    assert pipeline.summary.sink_failures == 5 and pipeline.metrics.count("sink_failures", "mqtt") == 5


def test_triggered_policy_blocks_and_never_drops(runner):
    # given a camera much faster than inference and a queue of 2
    images, _ = patterned(15)
    metrics = Metrics()
    sources = SourceSet(events=metrics)
    sources.add("line", lambda: ListSource("line", images), policy="block", queue_capacity=2)
    sink = CollectingSink()
    run_pipeline(sources, SlowRunner(runner, 0.02), {"c": sink})
    # then every frame is inspected, the capture waited, and nothing was dropped
    assert [r.frame_id for r in sink.results] == list(range(15))
    assert sources.queues.drops == {} and metrics.count("blocked", "line") >= 1


def test_free_running_policy_keeps_newest_and_counts_every_drop(runner):
    images, _ = patterned(40)
    metrics = Metrics()
    sources = SourceSet(events=metrics)
    sources.add("stream", lambda: ListSource("stream", images, delay_s=0.002), policy="latest", queue_capacity=1)
    sink = CollectingSink()
    run_pipeline(sources, SlowRunner(runner, 0.02), {"c": sink})
    dropped = sources.queues.drops.get(("stream", "queue_full"), 0)
    assert dropped > 0
    assert len(sink.results) + dropped == 40  # every frame is either inspected or counted
    assert metrics.count("dropped", "stream/queue_full") == dropped and metrics.count("captured", "stream") == 40
    assert sink.results[-1].frame_id == 39  # the newest frame wins
    ids = [r.frame_id for r in sink.results]
    assert ids == sorted(ids)


def test_stale_frames_are_dropped_at_dequeue_and_counted(runner):
    images, _ = patterned(10)
    sources = SourceSet()
    sources.add(
        "stream", lambda: ListSource("stream", images), policy="latest", queue_capacity=10, staleness_budget_ms=5
    )
    sink = CollectingSink()
    run_pipeline(sources, SlowRunner(runner, 0.03), {"c": sink})
    stale = sources.queues.drops.get(("stream", "stale"), 0)
    assert stale > 0 and len(sink.results) + stale + sources.queues.drops.get(("stream", "queue_full"), 0) == 10


def test_watchdog_restarts_a_hung_source_and_discards_the_late_frame(runner):
    release = threading.Event()
    made = []

    def make():
        made.append(1)
        if len(made) == 1:
            return HangingSource("cam", grey_frame(), before_hang=3, release=release)
        release.set()  # the hung read now returns: its frame must be discarded
        return ListSource("cam", [frame_with_patch((0, 0, 8, 8))] * 4, delay_s=0.01)

    metrics = Metrics()
    sources = SourceSet(events=metrics, check_interval_s=0.05)
    sources.add("cam", make, stall_timeout_s=0.3, backoff_initial_s=0.05)
    sink = CollectingSink()
    started = time.monotonic()
    run_pipeline(sources, runner, {"c": sink})
    assert time.monotonic() - started < 5.0
    assert [r.frame_id for r in sink.results] == list(range(7))
    assert [r.verdict for r in sink.results] == ["OK"] * 3 + ["NG"] * 4
    assert metrics.count("stalls", "cam") == 1 and metrics.count("restarts", "cam/stall") == 1
    assert metrics.count("dropped", "cam/abandoned_reader") == 1  # the hung read's late frame


def test_a_camera_that_is_not_there_is_retried_with_backoff_until_stop(runner):
    metrics = Metrics()
    sources = SourceSet(events=metrics, check_interval_s=0.05)
    sources.add("ghost", lambda: FailingOpenSource("ghost"), backoff_initial_s=0.05, backoff_max_s=0.2)
    pipeline = Pipeline("st1", sources, runner, {})
    stop = threading.Event()

    def stop_after_three_retries() -> None:  # on a loaded machine retries come later, never sooner
        deadline = time.monotonic() + 10.0
        while metrics.count("restarts", "ghost/error") < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()

    started = time.monotonic()
    threading.Thread(target=stop_after_three_retries, daemon=True).start()
    pipeline.run(stop)
    elapsed = time.monotonic() - started
    retries = metrics.count("restarts", "ghost/error")
    assert retries >= 3, "the missing camera was not retried"
    # backoff 0.05, 0.1, 0.2, ...: three retries take at least 0.15 s, and never come faster than 0.05 s apart
    assert elapsed >= 0.15 and retries <= elapsed / 0.05 + 1
    assert pipeline.summary.frames == 0


def test_the_loop_runs_with_a_short_gil_switch_interval_and_restores_it(runner):
    # background threads must hand the GIL back to the camera loop within 1 ms, not 5 ms
    import sys

    class Probe(CollectingSink):
        def handle(self, result, image=None):
            self.seen = sys.getswitchinterval()
            super().handle(result, image)

    before = sys.getswitchinterval()
    sources = SourceSet()
    sources.add("cam", lambda: ListSource("cam", [grey_frame()]))
    probe = Probe()
    run_pipeline(sources, runner, {"p": probe})
    assert probe.seen <= 0.001 < before and sys.getswitchinterval() == before
