"""Station metrics (Prometheus) and a /health JSON endpoint on one HTTP port.

Metrics (all prefixed `eiad_edge_`):
  frames_captured_total{source}        frames read from each camera
  frames_dropped_total{source,reason}  queue_full / stale (free_running), shutdown, abandoned_reader
  source_blocked_total{source}         a triggered camera waited on a full queue (alarm)
  source_stalls_total{source}          watchdog found no frame for stall_timeout_s
  source_restarts_total{source,reason} stall / error
  results_total{verdict}               OK / NG / REJECTED
  sink_failures_total{sink}            a sink raised; the loop went on
  stage_latency_seconds{stage}         histogram: queue_wait, inference, verdict, sinks, total
  queue_depth{source}                  frames waiting (sampled per result)
  source_fps{source}                   frames per second over the last ~2 s

Components that keep their own counters (the MQTT sink, the explainer, the Sparkplug
sink) are added with `watch(name, stats_fn)`: their `stats()` is read at each scrape and
each /health request (never on the camera loop) and exported by `edge.health.components`
(eiad_outbox_depth_rows, eiad_publish_latency_seconds, eiad_explainer_backlog_parts, ...).

Thread safety: every method may be called from any thread (prometheus_client is
thread-safe; the plain counters behind /health are guarded by a lock).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from edge.health.components import ComponentCollector, problems_of, snapshot
from edge.results import InspectionResult

log = logging.getLogger(__name__)

_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_STAGES = (
    ("queue_wait", "captured", "dequeued"),
    ("verdict", "inferred", "decided"),
    ("sinks", "decided", None),
    ("total", "captured", None),
)


class Metrics:
    """Counters for Prometheus and for /health; implements the source workers' events."""

    def __init__(self, registry: CollectorRegistry | None = None, queue_depth=None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._captured = Counter("eiad_edge_frames_captured", "frames read", ["source"], registry=r)
        self._dropped = Counter(
            "eiad_edge_frames_dropped", "frames dropped by policy", ["source", "reason"], registry=r
        )
        self._blocked = Counter(
            "eiad_edge_source_blocked", "triggered source waited on a full queue", ["source"], registry=r
        )
        self._stalls = Counter(
            "eiad_edge_source_stalls", "sources that produced nothing in time", ["source"], registry=r
        )
        self._restarts = Counter("eiad_edge_source_restarts", "source reopened", ["source", "reason"], registry=r)
        self._results = Counter("eiad_edge_results", "inspection results", ["verdict"], registry=r)
        self._sink_failures = Counter("eiad_edge_sink_failures", "sink calls that raised", ["sink"], registry=r)
        self._latency = Histogram(
            "eiad_edge_stage_latency_seconds", "per-stage latency", ["stage"], buckets=_BUCKETS_S, registry=r
        )
        self._depth = Gauge("eiad_edge_queue_depth", "frames waiting", ["source"], registry=r)
        self._fps = Gauge("eiad_edge_source_fps", "frames per second", ["source"], registry=r)
        self._queue_depth = queue_depth  # callable(source_id) -> int, set by the app
        self._lock = threading.Lock()
        self._source_listeners: list = []  # called on every source restart (OPC UA: the Error state)
        self._counts: dict[str, dict[str, int]] = {}
        self._window: dict[str, tuple[float, int]] = {}
        self._fps_now: dict[str, float] = {}
        self._components: dict[str, Callable[[], object]] = {}
        self.registry.register(ComponentCollector(self.component_stats))
        self.started_unix_s = time.time()
        self.last_result_unix_s: float | None = None

    def watch(self, name: str, stats: Callable[[], object]) -> None:
        """Report a component's `stats()` (a dict or a dataclass) under `name` in /health and,
        for the known ones (mqtt, explainer, sparkplug), as Prometheus series. It is called
        from the HTTP thread and the stats publisher: it must be thread-safe."""
        with self._lock:
            self._components[name] = stats

    def component_stats(self) -> dict[str, dict]:
        """Every watched component's stats now; a component that raises shows its error."""
        with self._lock:
            components = dict(self._components)
        return {name: snapshot(name, stats) for name, stats in components.items()}

    def pipeline_stats(self) -> dict[str, float]:
        """Flat counters for the MQTT stats topic: `results.NG`, `captured.<source>`,
        `dropped.<source>/<reason>`, `sink_failures.<sink>`, `fps.<source>`, `uptime_s`, and the
        explainer's counters as `explainer.<name>` (explained, inconsistent, dropped, backlog, ...)."""
        with self._lock:
            flat = {f"{family}.{key}": float(n) for family, table in self._counts.items() for key, n in table.items()}
            flat.update({f"fps.{source}": round(fps, 3) for source, fps in self._fps_now.items()})
            explainer = self._components.get("explainer")
        if explainer is not None:
            numbers = snapshot("explainer", explainer).items()
            flat.update(
                {
                    f"explainer.{k}": float(v)
                    for k, v in numbers
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
            )
        flat["uptime_s"] = round(time.time() - self.started_unix_s, 3)
        if self.last_result_unix_s is not None:
            flat["last_result_age_s"] = round(time.time() - self.last_result_unix_s, 3)
        return flat

    def watch_queues(self, depth) -> None:
        """Give the metrics a `depth(source_id) -> int` to sample the queue gauges from."""
        self._queue_depth = depth

    def _bump(self, family: str, key: str, n: int = 1) -> None:
        with self._lock:
            table = self._counts.setdefault(family, {})
            table[key] = table.get(key, 0) + n

    def count(self, family: str, key: str) -> int:
        with self._lock:
            return self._counts.get(family, {}).get(key, 0)

    def frame_captured(self, source_id: str) -> None:
        self._captured.labels(source_id).inc()
        self._bump("captured", source_id)
        now = time.monotonic()
        with self._lock:
            since, n = self._window.get(source_id, (now, 0))
            if now - since >= 2.0:
                fps = (n + 1) / (now - since)
                self._fps.labels(source_id).set(fps)
                self._fps_now[source_id] = fps
                since, n = now, -1
            self._window[source_id] = (since, n + 1)

    def frame_dropped(self, source_id: str, reason: str, count: int = 1) -> None:
        self._dropped.labels(source_id, reason).inc(count)
        self._bump("dropped", f"{source_id}/{reason}", count)

    def source_blocked(self, source_id: str) -> None:
        self._blocked.labels(source_id).inc()
        self._bump("blocked", source_id)

    def source_stalled(self, source_id: str) -> None:
        self._stalls.labels(source_id).inc()
        self._bump("stalls", source_id)

    def source_restarted(self, source_id: str, reason: str) -> None:
        self._restarts.labels(source_id, reason).inc()
        self._bump("restarts", f"{source_id}/{reason}")
        for listener in list(self._source_listeners):
            try:
                listener(source_id, reason)
            except Exception:  # a listener must never stop a camera's restart
                log.exception("a source-failure listener failed")

    def on_source_failure(self, listener) -> None:
        """Also call `listener(source_id, reason)` whenever a camera fails or stalls and is restarted."""
        self._source_listeners.append(listener)

    def sink_failed(self, sink: str) -> None:
        self._sink_failures.labels(sink).inc()
        self._bump("sink_failures", sink)

    def stage(self, stage: str, seconds: float) -> None:
        self._latency.labels(stage).observe(seconds)

    def result(self, result: InspectionResult, published_ns: int) -> None:
        self._results.labels(result.verdict).inc()
        self._bump("results", result.verdict)
        stamps = result.stamps_ns
        for stage, begin, end in _STAGES:
            if begin in stamps:
                self.stage(stage, ((stamps[end] if end else published_ns) - stamps[begin]) / 1e9)
        if self._queue_depth is not None:
            self._depth.labels(result.source_id).set(self._queue_depth(result.source_id))
        self.last_result_unix_s = time.time()

    def health(self) -> dict:
        """The /health document: `status` ("ok", or "degraded" with `problems`: broker not
        connected, outbox full or its disk full, ...), uptime, last result age, every plain
        counter, frames per second per source (`fps`, over the last ~2 s), and each watched
        component's stats under `components`."""
        with self._lock:
            counts = {family: dict(table) for family, table in self._counts.items()}
            fps = {source: round(value, 2) for source, value in self._fps_now.items()}
        age = None if self.last_result_unix_s is None else round(time.time() - self.last_result_unix_s, 3)
        components = self.component_stats()
        problems = problems_of(components)
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "uptime_s": round(time.time() - self.started_unix_s, 3),
            "last_result_age_s": age,
            "counts": counts,
            "fps": fps,
            "components": components,
        }


def watch_sink_stats(metrics: Metrics, sinks: dict) -> None:
    """Watch every sink that has a `stats()` method (MQTT, explainer feed, Sparkplug)."""
    for name, sink in sinks.items():
        stats = getattr(sink, "stats", None)
        if callable(stats):
            metrics.watch(name, stats)


class HealthServer:
    """Serves GET /metrics (Prometheus text) and GET /health (JSON) in a daemon thread."""

    def __init__(self, metrics: Metrics, host: str = "0.0.0.0", port: int = 9108) -> None:
        handler = _handler_for(metrics)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("metrics on :%d/metrics, health on :%d/health", self.port, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(metrics: Metrics):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.startswith("/metrics"):
                body, kind = generate_latest(metrics.registry), CONTENT_TYPE_LATEST
            elif self.path.startswith("/health"):
                body, kind = json.dumps(metrics.health(), default=str).encode(), "application/json"
            else:
                self.send_error(404, "try /metrics or /health")
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # quiet: scrapes every few seconds
            log.debug("health http: " + format, *args)

    return Handler
