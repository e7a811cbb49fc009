"""Overload: a station fed above its capacity for a set time (the "load" part of the reliability suite).

Free-running cameras offer frames faster than the loop can inspect them (the real ONNX
Runtime runner on the tiny artifact, slowed by `--infer-ms` per batch so the capacity is
known on any machine); the real pipeline, MQTT sink, SQLite outbox and a Mosquitto
started here do the rest; a QoS 1 subscriber in this process counts verdicts. Checks:

  - memory stays bounded: RSS growth after the warm-up stays below `--rss-bound-mib`;
  - drop counters are exact: frames offered == inspected + dropped (by reason), per camera;
  - processed frames are fresh: none older than the staleness budget when dequeued;
  - every inspected frame's verdict reaches the subscriber, sequence numbers without gaps.

    .venv/bin/python -m benchmarks.overload --duration-s 600     # the long run
tests/reliability/test_load.py runs it for 20 s in CI.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge.sources.base import Capture

log = logging.getLogger(__name__)


@dataclass
class OverloadReport:
    duration_s: float
    offered: dict[str, int]
    inspected: dict[str, int]
    dropped: dict[str, int]  # "<camera>/<reason>" -> frames
    verdicts_received: int
    sequences_missing: int
    max_dequeue_age_ms: float
    staleness_budget_ms: float
    latency_ms: dict[str, float]  # capture -> all sinks done, inspected frames
    rss_start_mib: float
    rss_max_mib: float
    rss_growth_mib: float
    rss_bound_mib: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class OverloadCamera:
    """A free-running camera stand-in: a fresh frame (a new array, as a real grab gives)
    every `1/fps` s on an absolute schedule, for `duration_s`; counts what it offered.
    Thread safety: one reader thread; `offered` read after the run."""

    def __init__(self, source_id: str, frames: list[np.ndarray], fps: float, duration_s: float) -> None:
        self.source_id = source_id
        self._frames, self._period_s, self._duration_s = frames, 1.0 / fps, duration_s
        self._start, self.offered = 0.0, 0

    def open(self) -> None:
        self._start = time.monotonic()

    def read(self) -> Capture | None:
        tick = self._start + self.offered * self._period_s
        if tick - self._start >= self._duration_s:
            return None
        delay = tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        image = self._frames[self.offered % len(self._frames)].copy()
        self.offered += 1
        return Capture(image=image)

    def close(self) -> None:
        pass


class SlowRunner:
    """The real runner plus a fixed sleep per batch: a known capacity on any machine."""

    def __init__(self, inner, extra_s: float) -> None:
        self.manifest, self.max_batch, self.provider = inner.manifest, inner.max_batch, inner.provider
        self.fixed_batch, self._inner, self._extra_s = inner.fixed_batch, inner, extra_s

    def run(self, batch):
        time.sleep(self._extra_s)
        return self._inner.run(batch)

    def close(self) -> None:
        self._inner.close()


class FreshnessSink:
    """Records per inspected frame only small numbers (a sink must not be the leak)."""

    def __init__(self) -> None:
        self.dequeue_age_ms: list[float] = []
        self.total_ms: list[float] = []
        self.per_source: dict[str, int] = {}

    def handle(self, result, image=None) -> None:
        stamps, now = result.stamps_ns, time.monotonic_ns()
        self.dequeue_age_ms.append((stamps["dequeued"] - stamps["captured"]) / 1e6)
        self.total_ms.append((now - stamps["captured"]) / 1e6)
        self.per_source[result.source_id] = self.per_source.get(result.source_id, 0) + 1

    def close(self) -> None:
        pass


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class RssSampler(threading.Thread):
    """Samples RSS every `interval_s`; `start_mib` is taken after `warmup_s` (imports, ORT
    arenas and the SQLite page cache settle first)."""

    def __init__(self, warmup_s: float, interval_s: float = 0.25) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self._warmup_s, self._interval_s = warmup_s, interval_s
        self.stop, self.start_mib, self.max_mib = threading.Event(), float("nan"), 0.0

    def run(self) -> None:
        began = time.monotonic()
        while not self.stop.wait(self._interval_s):
            value = rss_mib()
            if self.start_mib != self.start_mib and time.monotonic() - began >= self._warmup_s:
                self.start_mib = value
            self.max_mib = max(self.max_mib, value)


class VerdictCounter:
    """A persistent-session QoS 1 subscriber keeping only the set of sequence numbers."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.sequences: set[int] = set()
        self.received = 0
        self.subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="overload-plc", protocol=mqtt.MQTTv5)
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        self.received += 1
        self.sequences.add(int(json.loads(msg.payload)["sequence"]))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def run_overload(
    workdir: Path,
    *,
    duration_s: float = 20.0,
    cameras: int = 2,
    fps_per_camera: float = 150.0,
    infer_ms: float = 10.0,
    staleness_budget_ms: float = 40.0,
    queue_capacity: int = 4,
    rss_bound_mib: float = 25.0,
    warmup_s: float = 3.0,
) -> OverloadReport:
    """One overload run in `workdir` (artifact, outbox, broker files); returns the figures
    and, in `problems`, every check that failed."""
    from benchmarks.stand_ins.artifact import build_tiny_artifact
    from benchmarks.stand_ins.frames import line_frames
    from edge.health.metrics import Metrics
    from edge.pipeline import Pipeline
    from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
    from edge.sinks.mqtt.broker import Mosquitto
    from edge.sinks.mqtt.config import MqttSettings, OutboxSettings
    from edge.sinks.mqtt.outbox.store import Outbox
    from edge.sinks.mqtt.sink import MqttSink
    from edge.sources.watchdog import SourceSet

    artifact = build_tiny_artifact(workdir / "artifact")
    runner = SlowRunner(OnnxRuntimeRunner(artifact, providers=["CPUExecutionProvider"]), infer_ms / 1000.0)
    frames, _ = line_frames(16, every_ng=4)
    broker = Mosquitto(workdir / "broker", persistence=False).start()
    counter = VerdictCounter(broker.port, "eiad/l1/st1/verdict")
    counter.subscribed.wait(5)
    settings = MqttSettings(port=broker.port, line="l1", station="st1", close_timeout_s=10.0)
    mqtt_sink = MqttSink(settings, Outbox(OutboxSettings(path=workdir / "outbox.sqlite3")))
    metrics, fresh = Metrics(), FreshnessSink()
    sources = SourceSet(events=metrics)
    cams = [OverloadCamera(f"cam{i}", frames, fps_per_camera, duration_s) for i in range(cameras)]
    for cam in cams:
        sources.add(cam.source_id, lambda cam=cam: cam, "latest", queue_capacity, staleness_budget_ms)
    pipeline = Pipeline("st1", sources, runner, {"mqtt": mqtt_sink, "fresh": fresh}, metrics=metrics)
    sampler = RssSampler(warmup_s)
    sampler.start()
    began = time.monotonic()
    try:
        pipeline.run(threading.Event())
        elapsed = time.monotonic() - began
        mqtt_sink.flush(10.0)
        deadline = time.monotonic() + 10.0
        while counter.received < pipeline.summary.frames and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sampler.stop.set()
        sampler.join()
        mqtt_sink.close()
        counter.close()
        broker.kill()
        runner.close()
    return _report(
        cams,
        metrics,
        fresh,
        counter,
        pipeline.summary.last_sequence,
        sampler,
        elapsed,
        staleness_budget_ms,
        rss_bound_mib,
    )


def _report(cams, metrics, fresh, counter, last_sequence, sampler, elapsed, budget_ms, bound_mib) -> OverloadReport:
    offered = {c.source_id: c.offered for c in cams}
    inspected = {c.source_id: fresh.per_source.get(c.source_id, 0) for c in cams}
    dropped = dict(metrics.health()["counts"].get("dropped", {}))
    totals = np.array(fresh.total_ms) if fresh.total_ms else np.zeros(1)
    report = OverloadReport(
        duration_s=round(elapsed, 2),
        offered=offered,
        inspected=inspected,
        dropped=dropped,
        verdicts_received=counter.received,
        sequences_missing=len(set(range(1, last_sequence + 1)) - counter.sequences),
        max_dequeue_age_ms=round(max(fresh.dequeue_age_ms, default=0.0), 3),
        staleness_budget_ms=budget_ms,
        latency_ms={
            "p50": round(float(np.percentile(totals, 50)), 2),
            "p99": round(float(np.percentile(totals, 99)), 2),
            "max": round(float(totals.max()), 2),
        },
        rss_start_mib=round(sampler.start_mib, 1),
        rss_max_mib=round(sampler.max_mib, 1),
        rss_growth_mib=round(sampler.max_mib - sampler.start_mib, 1),
        rss_bound_mib=bound_mib,
    )
    for cam, n in offered.items():
        lost = sum(v for k, v in dropped.items() if k.startswith(f"{cam}/"))
        if n != inspected[cam] + lost:
            report.problems.append(f"{cam}: offered {n} != inspected {inspected[cam]} + dropped {lost}")
    if sum(inspected.values()) >= sum(offered.values()):
        report.problems.append("nothing was dropped: the load was not above capacity")
    if report.max_dequeue_age_ms > budget_ms:
        report.problems.append(f"a frame {report.max_dequeue_age_ms} ms old was inspected (budget {budget_ms} ms)")
    if report.sequences_missing or counter.received < sum(inspected.values()):
        report.problems.append(
            f"{report.sequences_missing} sequence numbers missing at the subscriber, "
            f"{counter.received} verdicts for {sum(inspected.values())} inspected frames"
        )
    if not report.rss_growth_mib < bound_mib:
        report.problems.append(f"RSS grew {report.rss_growth_mib} MiB after the warm-up (bound {bound_mib} MiB)")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=60.0, help="how long the cameras offer frames")
    parser.add_argument("--cameras", type=int, default=2, help="free-running cameras")
    parser.add_argument("--fps", type=float, default=150.0, help="frames per second offered by each camera")
    parser.add_argument(
        "--infer-ms", type=float, default=10.0, help="added to each inference: sets the capacity (~1000/ms fps)"
    )
    parser.add_argument(
        "--staleness-budget-ms", type=float, default=40.0, help="frames older than this at dequeue are dropped"
    )
    parser.add_argument("--rss-bound-mib", type=float, default=25.0, help="allowed RSS growth after the warm-up")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="eiad-overload-") as tmp:
        report = run_overload(
            Path(tmp),
            duration_s=args.duration_s,
            cameras=args.cameras,
            fps_per_camera=args.fps,
            infer_ms=args.infer_ms,
            staleness_budget_ms=args.staleness_budget_ms,
            rss_bound_mib=args.rss_bound_mib,
        )
    offered, inspected = sum(report.offered.values()), sum(report.inspected.values())
    print(f"{report.duration_s:.0f} s: offered {offered}, inspected {inspected}, dropped {report.dropped}")
    print(f"verdicts at the subscriber {report.verdicts_received}, sequences missing {report.sequences_missing}")
    print(
        f"oldest frame at dequeue {report.max_dequeue_age_ms} ms (budget {report.staleness_budget_ms} ms); "
        f"capture -> sinks done p50 {report.latency_ms['p50']} ms, p99 {report.latency_ms['p99']} ms"
    )
    print(
        f"RSS {report.rss_start_mib} MiB after warm-up, max {report.rss_max_mib} MiB, growth {report.rss_growth_mib} "
        "MiB "
        f"(bound {report.rss_bound_mib})"
    )
    print("OK" if report.ok else "FAILED: " + "; ".join(report.problems))
    if args.json:
        args.json.write_text(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
