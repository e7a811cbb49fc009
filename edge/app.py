"""Wiring: station config -> sources, runner, sinks, metrics -> a running pipeline.

The only module that builds things from config. Besides the pipeline it starts the
metrics/health server (which reads every sink's `stats()` when scraped) and, with MQTT,
a small thread publishing the stats topic every `mqtt.stats_interval_s`.
Shutdown order on SIGINT/SIGTERM (or `stop.set()`): stop capture, inspect the frames
still queued, stop the stats thread, close the sinks (the explainer first; the MQTT sink
flushes its outbox within its timeout and publishes `offline`; the Sparkplug sink sends
NDEATH), close the runner, stop the metrics server.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from edge.config import StationConfig
from edge.health import HealthServer, Metrics, watch_sink_stats
from edge.pipeline import Pipeline, PipelineSummary
from edge.results import InspectionResult
from edge.runners.base import Runner
from edge.runners.factory import build_runner
from edge.sinks.base import Sink, explanation_sinks
from edge.sources.factory import source_maker
from edge.sources.watchdog import SourceSet
from eiad.errors import ConfigError
from eiad.manifest import load_manifest

log = logging.getLogger(__name__)


class LogSink:
    """Logs NG and REJECTED verdicts at INFO (OK at DEBUG): the station's own record."""

    def handle(self, result: InspectionResult, image=None) -> None:
        level = logging.DEBUG if result.verdict == "OK" else logging.INFO
        log.log(level, "#%d %s %s score=%.3f class=%s regions=%d %s", result.sequence, result.source_id, result.verdict,
                result.score, result.defect_class, len(result.regions), result.reason)

    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        log.info("explanation %s: %s", inspection_id, text)

    def close(self) -> None:
        pass


class SequenceFile:
    """Keeps the last sequence number in a small file: the station's numbering for a station
    without MQTT, and a second record beside the outbox's (which is the durable one).

    It is called after the MQTT sink, so it never runs ahead of a stored verdict: a kill
    between the two leaves it one behind, and the start takes the larger of both. One
    `pwrite` into the page cache per result (microseconds, no fsync): survives a killed
    process, not a power cut (then numbering may repeat a few numbers; ids stay unique).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        text = os.pread(self._fd, 32, 0).decode("ascii", "replace").strip()
        self.last = int(text) if text.isdigit() else 0

    def handle(self, result: InspectionResult, image=None) -> None:
        os.pwrite(self._fd, f"{result.sequence:>20}\n".encode(), 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ExplainerFeed:
    """Offers each result to the explainer (never blocks: it has its own bounded backlog).
    With `requests` (edge/explain_requests.py) its stats also count MQTT explanation requests."""

    def __init__(self, explainer, requests=None) -> None:
        self._explainer = explainer
        self.requests = requests

    @property
    def explainer(self):
        """The Explainer this feed offers results to (benchmarks drain and warm it up)."""
        return self._explainer

    def handle(self, result: InspectionResult, image=None) -> None:
        self._explainer.submit(result)

    def stats(self) -> dict:
        """The explainer's counters (backlog, dropped, explained, ...) for health/metrics."""
        stats = dataclasses.asdict(self._explainer.stats())
        if self.requests is not None:
            stats.update(self.requests.stats())
        return stats

    def close(self) -> None:
        self._explainer.close()  # finishes or drops its backlog before the sinks close


class StatsPublisher:
    """Publishes the MQTT sink's stats message with the pipeline's counters every
    `interval_s` from its own daemon thread (never from the camera loop: building the
    message reads the outbox under its lock). `close()` stops it; idempotent."""

    def __init__(self, sink, metrics: Metrics, interval_s: float) -> None:
        self._sink, self._metrics, self._interval_s = sink, metrics, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-stats", daemon=True)

    def start(self) -> "StatsPublisher":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._sink.publish_stats(self._metrics.pipeline_stats())
            except Exception:  # never let a stats hiccup end the thread
                log.exception("periodic stats publish failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)


@dataclass
class Station:
    config: StationConfig
    pipeline: Pipeline
    runner: Runner
    sinks: dict[str, Sink]
    metrics: Metrics
    health: HealthServer | None
    stats_publisher: StatsPublisher | None = None

    def close(self) -> None:
        if self.stats_publisher is not None:
            self.stats_publisher.close()  # before the MQTT sink it publishes through
        # The explainer closes first so its last explanations still reach open sinks.
        for name, sink in sorted(self.sinks.items(), key=lambda item: item[0] != "explainer"):
            try:
                sink.close()
            except Exception:
                log.exception("closing sink %s failed", name)
        self.runner.close()
        if self.health is not None:
            self.health.close()


def build_station(config: StationConfig, extra_sinks: dict[str, Sink] | None = None,
                  sources: SourceSet | None = None) -> Station:
    """Load the artifact and build the station; opens no camera yet (the pipeline starts them).

    `sources`: a SourceSet built by the caller (a demo or test camera) instead of the
    config's `sources`; its `events` should be a `Metrics`, which then becomes the
    station's (else a fresh one is made and the cameras' events are not counted).
    """
    artifact = config.path(config.artifact)
    manifest = load_manifest(artifact)
    runner = build_runner(config.runner, artifact, manifest, config.path)
    if sources is None:
        metrics = Metrics()
        sources = _sources_from_config(config, metrics)
    else:
        metrics = sources.events if isinstance(sources.events, Metrics) else Metrics()
    try:
        sinks, first_sequence = _build_sinks(config, extra_sinks or {}, manifest.model_id)
    except BaseException:
        runner.close()
        raise
    pipeline = Pipeline(config.station_id, sources, runner, sinks, config.thresholds, metrics,
                        config.batching.max_batch, config.batching.max_wait_ms, config.frames.wrong_size, first_sequence,
                        blank_max_std=config.frames.blank_max_std)
    watch_sink_stats(metrics, sinks)
    stats_publisher = None
    if "mqtt" in sinks and config.mqtt is not None and config.mqtt.stats_interval_s > 0:
        stats_publisher = StatsPublisher(sinks["mqtt"], metrics, config.mqtt.stats_interval_s).start()
    health = None
    if config.metrics.enabled:
        health = HealthServer(metrics, config.metrics.host, config.metrics.port)
        health.start()
    return Station(config, pipeline, runner, sinks, metrics, health, stats_publisher)


def _sources_from_config(config: StationConfig, metrics: Metrics) -> SourceSet:
    sources = SourceSet(events=metrics)
    for source in config.sources:
        staleness = source.staleness_budget_ms if source.policy == "free_running" else None
        policy = "latest" if source.policy == "free_running" else "block"
        sources.add(source.id, source_maker(source, config.path), policy, source.queue_capacity, staleness,
                    source.stall_timeout_s, source.restart_backoff_s, source.restart_backoff_max_s)
    return sources


def _build_sinks(config: StationConfig, extra: dict[str, Sink], model_id: str) -> tuple[dict[str, Sink], int]:
    """Sinks in call order: log, mqtt, sparkplug, archive, extras, sequence, explainer; and the
    first sequence number: one after the last one stored (outbox meta or sequence file)."""
    sinks: dict[str, Sink] = {"log": LogSink()}
    last_sequence = 0
    if config.mqtt is not None:
        from edge.outbox import Outbox
        from edge.sinks.mqtt import MqttSink

        outbox = Outbox(config.outbox.model_copy(update={"path": config.path(config.outbox.path)}))
        last_sequence = outbox.last_sequence  # written in the same transaction as each verdict
        sinks["mqtt"] = MqttSink(config.mqtt, outbox)
        if config.mqtt.sparkplug is not None:
            from edge.sinks.sparkplug import SparkplugSink

            sinks["sparkplug"] = SparkplugSink(config.mqtt, model_id)  # at most once, after the lossless one
    if config.archive is not None:
        from edge.sinks.archive import ArchiveSink

        sinks["archive"] = ArchiveSink(config.archive.model_copy(update={"directory": config.path(config.archive.directory)}))
    sinks.update(extra)
    if config.sequence_file is not None:
        # After the MQTT sink: the file may lag the outbox by one after a kill, never lead it.
        sequence = SequenceFile(config.path(config.sequence_file))
        last_sequence = max(last_sequence, sequence.last)
        sinks["sequence"] = sequence
    if config.explainer is not None and config.explainer.enabled:
        sinks["explainer"] = explainer_feed(config, sinks)  # last: the verdict is stored before it is offered
    if last_sequence:
        log.info("sequence numbering continues at %d", last_sequence + 1)
    return sinks, last_sequence + 1


def explainer_feed(config: StationConfig, sinks: dict[str, Sink]) -> ExplainerFeed:
    """The explainer (started) over every publishing sink in `sinks`, to be called last in
    the sink order; with `explainer.mqtt_requests`, the MQTT sink subscribes to the
    station's explain/request topic and feeds it. Also wires `eiad bench line`'s loop."""
    from edge.explainer import build_explainer

    settings = config.explainer.mqtt_requests
    if settings is not None and "mqtt" not in sinks:
        raise ConfigError("explainer.mqtt_requests is set but the station has no mqtt: section: "
                          "add mqtt: (broker, line, station) or remove explainer.mqtt_requests")
    if settings is None and config.explainer.mode == "on_request":
        log.warning("explainer.mode is on_request but explainer.mqtt_requests is not set: "
                    "nothing can request an explanation; add explainer.mqtt_requests: {}")
    publishers = explanation_sinks(sinks.values())
    explainer = build_explainer(config.path(config.artifact), publishers, config.explainer).start()
    if settings is None:
        return ExplainerFeed(explainer)
    from edge.explain_requests import ExplainRequests

    mqtt_sink = sinks["mqtt"]
    requests = ExplainRequests(explainer, config.station_id, mqtt_sink.topics, settings, mqtt_sink.publish_now)
    mqtt_sink.subscribe(requests.topic, requests.handle)
    log.info("accepting explanation requests on %s (answers on %s)", requests.topic, requests.response_topic)
    return ExplainerFeed(explainer, requests)


def run_station(config: StationConfig, stop: threading.Event | None = None, extra_sinks: dict[str, Sink] | None = None) -> PipelineSummary:
    """Build, run until stopped (signal or `stop`) or until finite sources end, shut down cleanly."""
    stop = stop or threading.Event()
    station = build_station(config, extra_sinks)
    restore = _install_signal_handlers(stop)
    try:
        log.info("station %s/%s running: %d source(s), model %s on %s", config.line_id, config.station_id,
                 len(config.sources), station.runner.manifest.model_id, station.runner.provider)
        summary = station.pipeline.run(stop)
    finally:
        station.close()
        restore()
    log.info("station stopped: %d results %s", summary.frames, summary.verdicts)
    return summary


def _install_signal_handlers(stop: threading.Event):
    """SIGINT/SIGTERM set `stop` (main thread only); returns a function restoring the old ones."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame) -> None:
        log.info("%s received: finishing in-flight frames", signal.Signals(signum).name)
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(sig, h) for sig, h in old.items()]
