"""Run the station loop under a camera load and time each frame until the PLC has it.

The loop is the edge's own (`edge.pipeline.Pipeline`, the runner from
`edge.runners.factory`, the MQTT sink with its SQLite outbox, the log sink), wired as
`edge/app.py` wires it, except that the cameras are `PacedSource`s: N of them replay
frames at a target fps on an absolute schedule (fps 0: as fast as the loop takes them).
A `TimingSink` wraps the MQTT sink to stamp when the outbox commit returns, and a
`VerdictListener` (a paho subscriber, QoS 1) stamps when each verdict arrives. Every
stamp is `time.monotonic_ns()` in this one process, so stages line up exactly:

    capture   captured -> queued        (reader thread hands the frame over)
    queue     queued -> dequeued        (waiting for the inference thread / batch)
    preprocess dequeued -> preprocessed (size checks, stacking, padding)
    inference preprocessed -> inferred
    postprocess inferred -> decided     (verdict, regions, mask)
    outbox    decided -> outbox commit returned (log sink + verdict JSON + SQLite)
    publish+broker outbox commit -> verdict received by the subscriber
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import paho.mqtt.client as mqtt

from edge.sources.base import Capture
from eiad.line_goals import score_image

log = logging.getLogger(__name__)

# The PLC stand-in's client id, and the name paho gives its network thread: the bench's own
# CPU, left out of the station's (benchmarks/cpu_cost.py).
BENCH_CLIENT_ID = "eiad-bench-plc"
BENCH_CLIENT_THREADS = f"paho-mqtt-client-{BENCH_CLIENT_ID}"

STAGE_STAMPS = (
    ("capture", "captured", "queued"),
    ("queue", "queued", "dequeued"),
    ("preprocess", "dequeued", "preprocessed"),
    ("inference", "preprocessed", "inferred"),
    ("postprocess", "inferred", "decided"),
    ("outbox", "decided", "outboxed"),
    ("publish+broker", "outboxed", "received"),
    ("total", "captured", "received"),
)


class PacedSource:
    """A camera stand-in: `frames` round-robin at `fps` (0: no pacing) for `duration_s`.

    Ticks are absolute (start + i/fps), so a late read does not shift later ticks; a read
    that starts more than one period after its tick (the queue blocked) counts as late.
    Thread safety: one reader thread; `late` is read after the run.
    """

    def __init__(
        self, source_id: str, frames: list[np.ndarray], fps: float, duration_s: float, phase_s: float = 0.0
    ) -> None:
        self.source_id = source_id
        self._frames = frames
        self._period_s = 1.0 / fps if fps > 0 else 0.0
        self._duration_s = duration_s
        # Paced cameras deliver exactly round(fps * duration) frames: counting ticks, not
        # comparing clock differences, which rounding can push either side of the end.
        self._frame_count = round(fps * duration_s) if fps > 0 else None
        self._phase_s = phase_s
        self._start = 0.0
        self._i = 0
        self.late = 0

    def open(self) -> None:
        self._start = time.perf_counter() + self._phase_s
        self._i = 0

    def read(self) -> Capture | None:
        tick = self._start + self._i * self._period_s
        if self._frame_count is not None and self._i >= self._frame_count:
            return None
        if self._frame_count is None and time.perf_counter() - self._start >= self._duration_s:
            return None
        now = time.perf_counter()
        if tick > now:
            time.sleep(tick - now)
        elif self._period_s and now - tick > self._period_s:
            self.late += 1
        image = self._frames[self._i % len(self._frames)]
        self._i += 1
        return Capture(image=image)

    def close(self) -> None:
        pass


class TimingSink:
    """Wraps the MQTT sink: records each result's stage stamps plus the outbox-commit time,
    when each explanation's outbox commit returned (`explained`), and the first
    `keep_samples` NG results with vision features (`samples`: the explainer-alone probe's
    input). Anything else (topics, subscribe, publish_now) goes to the MQTT sink."""

    def __init__(self, inner, keep_samples: int = 0) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.stamps: dict[str, dict[str, int]] = {}
        self.explained: dict[str, int] = {}
        self.samples: list = []
        self._keep = keep_samples

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # only called for names TimingSink lacks

    def handle(self, result, image=None) -> None:
        self.inner.handle(result, image)
        done = time.monotonic_ns()
        with self._lock:
            self.stamps[result.inspection_id] = {
                **result.stamps_ns,
                "outboxed": done,
                "_verdict": result.verdict,
                "_cpu": result.cpu_ns,  # the same dict: later sinks add their CPU time to it
            }
            if len(self.samples) < self._keep and result.verdict == "NG" and result.features is not None:
                self.samples.append(result)

    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        self.inner.handle_explanation(inspection_id, text, meta)
        done = time.monotonic_ns()
        with self._lock:
            self.explained[inspection_id] = done

    def close(self) -> None:
        self.inner.close()


class VerdictListener:
    """The PLC's view: subscribes to the verdict topic (or the explanation topic) at QoS 1
    and stamps each arrival; with `keep_messages`, keeps each first message's JSON too."""

    def __init__(self, host: str, port: int, topic: str, keep_messages: bool = False) -> None:
        self.received: dict[str, int] = {}
        self.messages: dict[str, dict] = {}
        self._keep = keep_messages
        self.duplicates = 0
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self._topic = topic
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"{BENCH_CLIENT_ID}-{time.monotonic_ns()}", protocol=mqtt.MQTTv5
        )
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda c, u, mid, codes, p: self.ready.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port, keepalive=30)
        self._client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        now = time.monotonic_ns()
        try:
            message = json.loads(msg.payload)
            inspection_id = message["inspection_id"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            if inspection_id in self.received:
                self.duplicates += 1
            else:
                self.received[inspection_id] = now
                if self._keep:
                    self.messages[inspection_id] = message

    def wait_for(self, ids: set[str], timeout_s: float) -> int:
        """Wait until every id arrived or the timeout; returns how many are still missing."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                missing = len(ids - self.received.keys())
            if not missing:
                return 0
            time.sleep(0.02)
        with self._lock:
            return len(ids - self.received.keys())

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@dataclass
class LoopRun:
    """Per-frame stage times (ms) of one loop run and its counters."""

    stages_ms: dict[str, np.ndarray]
    frames_captured: int
    verdicts_received: int
    lost: int  # computed but never received
    dropped: int  # dropped by the queues (free-running policy, staleness)
    late: int  # frames a paced camera delivered more than one period after its tick
    duplicates: int
    throughput_per_s: float
    verdicts: dict[str, int] = field(default_factory=dict)
    accuracy: dict | None = None  # eiad.line_goals.score_image of what the subscriber received, with truth
    explanations: dict | None = None  # benchmarks/explain_bench.py's section, when the explainer ran
    samples: list = field(default_factory=list)  # a few NG InspectionResults kept for the explainer-alone probe
    cpu: dict | None = None  # benchmarks/cpu_cost.py's section


def warmup_frames(received: int) -> int:
    """Frames at the start of a run left out of latency statistics: 3, or 5 % of a long run."""
    return min(max(3, received // 20), received // 2)


def score_replayed(truth: list[dict | None], messages) -> dict:
    """Verdicts against the truth, one part per distinct frame of the stream.

    The bench replays the stream's frames (several cameras, each from its first frame, and
    again from the start when a run outlasts it), so a frame can be judged several times.
    Counting each verdict would weight parts by how often the run happened to replay them;
    a part is one part. So each distinct frame is scored once: with the verdict its replays
    agree on, or, when they disagree (a runner that is not deterministic, a part REJECTED
    under overload), with a wrong one, never the best of its tries. `verdicts` and
    `replays_disagreeing` say how many verdicts that was and on how many frames they differed.
    """
    by_frame: dict[int, list[str]] = {}
    for message in messages:
        by_frame.setdefault(int(message["frame_id"]) % len(truth), []).append(message["verdict"])
    pairs, disagreeing = [], 0
    for index, verdicts in sorted(by_frame.items()):
        record = truth[index]
        label = (record or {}).get("label")
        if len(set(verdicts)) > 1:
            disagreeing += 1
        wrong = [v for v in verdicts if v != label]
        pairs.append((record, wrong[0] if wrong else verdicts[0]))
    scores = score_image(pairs)
    scores["verdicts"] = sum(len(v) for v in by_frame.values())
    scores["replays_disagreeing"] = disagreeing
    return scores


def collect(
    timing: TimingSink,
    listener: VerdictListener,
    dropped: int,
    late: int,
    captured: int,
    truth: list[dict | None] | None = None,
) -> LoopRun:
    """Join stamps with arrivals; throughput = received / (last arrival - first capture).
    With `truth` (one record per frame of the stream; cameras replay the frames round-robin
    from their first), each distinct frame is scored once against its record (score_replayed)."""
    rows, verdicts = [], {}
    for inspection_id, stamps in timing.stamps.items():
        verdicts[stamps["_verdict"]] = verdicts.get(stamps["_verdict"], 0) + 1
        if inspection_id in listener.received:
            rows.append({**stamps, "received": listener.received[inspection_id]})
    # The first frames of a run pay one-off costs (first MQTT publish, first outbox write,
    # first inference of a fresh pipeline): not what a running line sees. They are delivered
    # and counted, but left out of the latency statistics (the warm-up of habit 13).
    timed = sorted(rows, key=lambda r: r["captured"])[warmup_frames(len(rows)) :]
    stages = {}
    for stage, begin, end in STAGE_STAMPS:
        values = [(r[end] - r[begin]) / 1e6 for r in timed if begin in r and end in r]
        if values:
            stages[stage] = np.asarray(values)
    span_s = (
        (max(r["received"] for r in rows) - min(r["captured"] for r in rows)) / 1e9 if len(rows) > 1 else float("nan")
    )
    accuracy = score_replayed(truth, listener.messages.values()) if truth else None
    return LoopRun(
        stages_ms=stages,
        frames_captured=captured,
        verdicts_received=len(rows),
        lost=len(timing.stamps) - len(rows),
        dropped=dropped,
        late=late,
        duplicates=listener.duplicates,
        throughput_per_s=len(rows) / span_s if span_s and span_s > 0 else float("nan"),
        verdicts=verdicts,
        accuracy=accuracy,
    )
