"""The pipelined station: inference on one thread, verdicts and sinks on the finishing
thread, with a bounded hand-off between them (real ONNX Runtime on the tiny artifact)."""

from __future__ import annotations

import threading
import time

import pytest

import edge.pipeline
from benchmarks.stand_ins.artifact import grey_frame
from edge.pipeline import Pipeline
from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
from edge.sources.watchdog import SourceSet
from tests.support_edge.fakes import CollectingSink, ListSource
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)
from tests.unit.test_edge_pipeline import patterned


@pytest.fixture(scope="module")
def runner(tiny_artifact):
    return OnnxRuntimeRunner(tiny_artifact, providers=["CPUExecutionProvider"])


class CallTimes:
    """The real runner, recording when each inference returned."""

    def __init__(self, inner) -> None:
        self.manifest, self.max_batch, self.provider = inner.manifest, inner.max_batch, inner.provider
        self.fixed_batch = inner.fixed_batch
        self._inner = inner
        self.returned: list[float] = []

    def run(self, batch):
        outputs = self._inner.run(batch)
        self.returned.append(time.monotonic())
        return outputs

    def close(self):
        pass


class HiccupSink(CollectingSink):
    """Stalls `stall_s` on the first result (a disk flush, a GC pause), then is fast."""

    def __init__(self, stall_s: float) -> None:
        super().__init__()
        self._stall_s = stall_s
        self.first_returned: float | None = None

    def handle(self, result, image=None) -> None:
        if self.first_returned is None:
            time.sleep(self._stall_s)
            self.first_returned = time.monotonic()
        super().handle(result, image)


def run(sources: SourceSet, runner, sinks: dict, **kwargs) -> Pipeline:
    pipeline = Pipeline("st1", sources, runner, sinks, **kwargs)
    stop = threading.Event()
    threading.Timer(20.0, stop.set).start()  # a safety net: the test fails on counts, never hangs
    pipeline.run(stop)
    stop.set()
    return pipeline


def _run_with_a_stall(runner, parts: int, queue_capacity: int, handoff_capacity: int):
    """A triggered camera of `parts` parts through a station whose only sink stalls 0.5 s on
    the first result: (sources, runner call times, sink, expected verdicts)."""
    images, expected = patterned(parts)
    sources = SourceSet()
    sources.add("cam", lambda: ListSource("cam", images), policy="block", queue_capacity=queue_capacity)
    timed, sink = CallTimes(runner), HiccupSink(stall_s=0.5)
    run(sources, timed, {"slow": sink}, handoff_capacity=handoff_capacity)
    return sources, timed, sink, expected


def test_a_stalled_sink_does_not_hold_up_inference_of_the_next_frames(runner):
    # given a triggered camera with 6 parts and a sink that stalls 0.5 s on the first result
    # when the station runs
    _, timed, sink, expected = _run_with_a_stall(runner, parts=6, queue_capacity=4, handoff_capacity=8)
    # then every part was inferred while the sink was still stalled on the first one
    assert len(timed.returned) == 6
    assert all(t < sink.first_returned for t in timed.returned)
    # and nothing was lost or reordered on the way to the sink
    assert [r.sequence for r in sink.results] == list(range(1, 7))
    assert [r.verdict for r in sink.results] == expected


def test_a_full_hand_off_holds_inference_back_instead_of_dropping(runner):
    # given a hand-off of 2 and a sink that stalls on the first of 8 triggered parts
    # when the station runs
    sources, timed, sink, expected = _run_with_a_stall(runner, parts=8, queue_capacity=2, handoff_capacity=2)
    # then inference waited for room (bounded memory): only the first few ran during the stall
    during_stall = sum(t < sink.first_returned for t in timed.returned)
    assert 2 <= during_stall <= 4  # 1 being finished + 2 in the hand-off (+1 waiting to be handed over)
    # and still every part reached the sink, in order, none dropped
    assert [r.sequence for r in sink.results] == list(range(1, 9))
    assert [r.verdict for r in sink.results] == expected
    assert sum(sources.queues.drops.values()) == 0


def test_a_post_processing_failure_rejects_that_part_and_the_loop_goes_on(runner, monkeypatch):
    # given verdict post-processing that fails on the second part
    real, calls = edge.pipeline.decide, []

    def failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("no memory for the mask (test)")
        return real(*args, **kwargs)

    monkeypatch.setattr(edge.pipeline, "decide", failing_once)
    sources = SourceSet()
    sources.add("cam", lambda: ListSource("cam", [grey_frame()] * 4), policy="block", queue_capacity=4)
    sink = CollectingSink()
    # when the station runs
    run(sources, runner, {"c": sink})
    # then that part is REJECTED with the reason and the others are judged as usual
    assert [r.verdict for r in sink.results] == ["OK", "REJECTED", "OK", "OK"]
    assert "post-processing failed: no memory for the mask" in sink.results[1].reason
    assert [r.sequence for r in sink.results] == [1, 2, 3, 4]


def test_each_result_carries_the_cpu_time_of_every_stage(runner):
    images, _ = patterned(6)
    sources = SourceSet()
    sources.add("cam", lambda: ListSource("cam", images), policy="block", queue_capacity=4)
    first, second = CollectingSink(), CollectingSink()
    run(sources, runner, {"first": first, "second": second})
    for result in second.results:
        assert set(result.cpu_ns) == {"preprocess", "inference", "verdict", "sink:first", "sink:second"}
        assert all(isinstance(ns, int) and ns >= 0 for ns in result.cpu_ns.values())
        assert result.cpu_ns["inference"] > 0  # the model ran on the loop thread (intra-op threads 1 or more)
