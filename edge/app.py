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

import logging
import signal
import threading
from dataclasses import dataclass

from edge.config import StationConfig
from edge.explainer.feed import explainer_feed
from edge.frames import inspection_id
from edge.health.metrics import HealthServer, Metrics, watch_sink_stats
from edge.hmi.process import PageProcess
from edge.opcua.process import OpcUaLink
from edge.pipeline import Pipeline, PipelineSummary
from edge.runners.base import Runner
from edge.runners.factory import build_runner
from edge.sinks.base import Sink
from edge.sinks.log import LogSink
from edge.sinks.mqtt.stats import StatsPublisher
from edge.sinks.sequence import SequenceFile
from edge.sources.factory import source_maker
from edge.sources.watchdog import SourceSet
from eiad.manifest import load_manifest

log = logging.getLogger(__name__)


@dataclass
class Station:
    config: StationConfig
    pipeline: Pipeline
    runner: Runner
    sinks: dict[str, Sink]
    metrics: Metrics
    health: HealthServer | None
    stats_publisher: StatsPublisher | None = None
    hmi: PageProcess | None = None
    opcua: OpcUaLink | None = None

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
        if self.hmi is not None:
            self.hmi.close()  # after the sinks: the page's process has stored every result
        if self.opcua is not None:
            self.opcua.close()  # publishes what it holds, then Halted
        if self.health is not None:
            self.health.close()


def build_station(
    config: StationConfig, extra_sinks: dict[str, Sink] | None = None, sources: SourceSet | None = None
) -> Station:
    """Load the artifact and build the station; opens no camera yet (the pipeline starts them).

    `sources`: a SourceSet built by the caller (a demo or test camera) instead of the
    config's `sources`; its `events` should be a `Metrics`, which then becomes the
    station's (else a fresh one is made and the cameras' events are not counted).
    """
    artifact = config.path(config.artifact)
    manifest = load_manifest(artifact)
    # The OPC UA server first: PLCs see the station Preoperational while the model loads.
    opcua = _start_opcua(config, manifest) if config.opcua is not None and config.opcua.enabled else None
    try:
        runner = build_runner(config.runner, artifact, manifest, config.path)
    except BaseException:
        if opcua is not None:
            opcua.close()
        raise
    if sources is None:
        metrics = Metrics()
        sources = _sources_from_config(config, metrics)
    else:
        metrics = sources.events if isinstance(sources.events, Metrics) else Metrics()
    hmi = None
    try:
        extra = dict(extra_sinks or {})
        if config.hmi is not None and config.hmi.enabled:
            hmi = _start_hmi(config, manifest, metrics)
            extra["hmi"] = hmi.feed
        if opcua is not None:
            extra["opcua"] = opcua
            metrics.on_source_failure(opcua.source_failed)  # a camera down: the vision system is in Error
            opcua.set_trigger(_trigger_for(config.station_id, sources))
        sinks, first_sequence = _build_sinks(config, extra, manifest.model_id)
    except BaseException:
        if hmi is not None:
            hmi.close()
        if opcua is not None:
            opcua.close()
        runner.close()
        raise
    pipeline = Pipeline(
        config.station_id,
        sources,
        runner,
        sinks,
        config.thresholds,
        metrics,
        config.batching.max_batch,
        config.batching.max_wait_ms,
        config.frames.wrong_size,
        first_sequence,
        blank_max_std=config.frames.blank_max_std,
    )
    watch_sink_stats(metrics, sinks)
    stats_publisher = None
    if "mqtt" in sinks and config.mqtt is not None and config.mqtt.stats_interval_s > 0:
        stats_publisher = StatsPublisher(sinks["mqtt"], metrics, config.mqtt.stats_interval_s).start()
    health = None
    if config.metrics.enabled:
        health = HealthServer(metrics, config.metrics.host, config.metrics.port)
        health.start()
    return Station(config, pipeline, runner, sinks, metrics, health, stats_publisher, hmi, opcua)


def _start_opcua(config: StationConfig, manifest) -> OpcUaLink:
    about = {"line": config.line_id, "station": config.station_id, "model_id": manifest.model_id}
    settings = config.opcua.model_copy(update={"pki_dir": config.path(config.opcua.pki_dir)})
    return OpcUaLink(settings, about, [s.id for s in config.sources]).start()


def _trigger_for(station_id: str, sources: SourceSet):
    """What the OPC UA method TriggerInspection calls: the triggered frame's inspection id."""

    def trigger(camera: str, timeout_s: float) -> str:
        frame_id, captured_unix_s = sources.trigger(camera, timeout_s)
        return inspection_id(station_id, camera, captured_unix_s, frame_id)

    return trigger


def _start_hmi(config: StationConfig, manifest, metrics: Metrics) -> PageProcess:
    from edge.hmi.process import start_page_process

    about = {
        "line": config.line_id,
        "station": config.station_id,
        "model_id": manifest.model_id,
        "class_names": list(manifest.class_names),
    }
    paths = {"review_dir": config.path(config.hmi.review_dir), "data_dir": config.path(config.hmi.data_dir)}
    return start_page_process(config.hmi.model_copy(update=paths), config.line_id, metrics.health, about)


def _sources_from_config(config: StationConfig, metrics: Metrics) -> SourceSet:
    sources = SourceSet(events=metrics)
    for source in config.sources:
        staleness = source.staleness_budget_ms if source.policy == "free_running" else None
        policy = "latest" if source.policy == "free_running" else "block"
        sources.add(
            source.id,
            source_maker(source, config.path),
            policy,
            source.queue_capacity,
            staleness,
            source.stall_timeout_s,
            source.restart_backoff_s,
            source.restart_backoff_max_s,
            source.plc_trigger,
        )
    return sources


def _build_sinks(config: StationConfig, extra: dict[str, Sink], model_id: str) -> tuple[dict[str, Sink], int]:
    """Sinks in call order: log, mqtt, sparkplug, archive, extras, sequence, explainer; and the
    first sequence number: one after the last one stored (outbox meta or sequence file)."""
    sinks: dict[str, Sink] = {"log": LogSink()}
    last_sequence = 0
    if config.mqtt is not None:
        from edge.sinks.mqtt.outbox.store import Outbox
        from edge.sinks.mqtt.sink import MqttSink

        outbox = Outbox(config.outbox.model_copy(update={"path": config.path(config.outbox.path)}))
        last_sequence = outbox.last_sequence  # written in the same transaction as each verdict
        sinks["mqtt"] = MqttSink(config.mqtt, outbox)
        if config.mqtt.sparkplug is not None:
            from edge.sinks.sparkplug.sink import SparkplugSink

            sinks["sparkplug"] = SparkplugSink(config.mqtt, model_id)  # at most once, after the lossless one
    if config.archive is not None:
        from edge.sinks.archive import ArchiveSink

        sinks["archive"] = ArchiveSink(
            config.archive.model_copy(update={"directory": config.path(config.archive.directory)})
        )
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


def run_station(
    config: StationConfig, stop: threading.Event | None = None, extra_sinks: dict[str, Sink] | None = None
) -> PipelineSummary:
    """Build, run until stopped (signal or `stop`) or until finite sources end, shut down cleanly."""
    stop = stop or threading.Event()
    station = build_station(config, extra_sinks)
    restore = _install_signal_handlers(stop)
    try:
        log.info(
            "station %s/%s running: %d source(s), model %s on %s",
            config.line_id,
            config.station_id,
            len(config.sources),
            station.runner.manifest.model_id,
            station.runner.provider,
        )
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
