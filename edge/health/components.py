"""Prometheus series and health problems from the stats of the station's components.

The MQTT sink, the explainer and the Sparkplug sink keep their own counters (`stats()`).
`ComponentCollector` reads them at scrape time (a custom collector: nothing polls, and
the camera loop never pays for it) and exports:

  eiad_mqtt_connected                  1 while connected to the broker
  eiad_mqtt_connects_total             accepted CONNACKs
  eiad_mqtt_connect_refusals_total     refused CONNACKs (wrong password, not authorised)
  eiad_mqtt_last_refusal_code          CONNACK reason code of the last refusal (0: none)
  eiad_mqtt_inflight_messages          published, PUBACK not yet received
  eiad_mqtt_published_total            messages handed to the network from the outbox
  eiad_outbox_depth_rows / _bytes      messages (and their bytes) waiting in the outbox
  eiad_outbox_full_alarm               1 while the outbox is at a bound (policy applied)
  eiad_outbox_disk_full                1 while the outbox's disk refuses writes
  eiad_outbox_corrupt_quarantined      corrupt outbox files set aside at start
  eiad_outbox_dropped_total{reason}    messages dropped (expired, full_drop_mask, disk_full, ...)
  eiad_outbox_acked_total              messages acknowledged by the broker and deleted
  eiad_outbox_replayed_total           messages from an earlier run published again
  eiad_publish_latency_seconds{quantile}  outbox write -> PUBACK, recent messages (0.5, 0.99, 1 = max)
  eiad_explainer_backlog_parts         parts waiting for an explanation
  eiad_explainer_produced_total / _dropped_total / _failed_total / _inconsistent_total
  eiad_explain_requests_accepted_total         MQTT explanation requests queued
  eiad_explain_requests_rejected_total{reason} MQTT explanation requests refused (edge/explainer/requests.py)
  eiad_sparkplug_connected, eiad_sparkplug_published_total, eiad_sparkplug_dropped_total{reason}

Thread safety: the collector runs on the HTTP thread; it only calls the components'
thread-safe `stats()`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

log = logging.getLogger(__name__)

_QUANTILES = (("p50", "0.5"), ("p99", "0.99"), ("max", "1"))


def snapshot(name: str, stats: Callable[[], object]) -> dict:
    """One component's stats as a plain dict; `{"error": ...}` when its stats() raised."""
    try:
        value = stats()
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        return dict(value)  # type: ignore[call-overload]
    except Exception as error:  # health must answer even when a component is broken
        log.warning("stats of %s failed: %s", name, error)
        return {"error": str(error)}


def problems_of(components: dict[str, dict]) -> list[str]:
    """What an operator must act on, in words (empty: healthy)."""
    problems = []
    for name, stats in components.items():
        if "error" in stats:
            problems.append(f"{name}: stats unavailable ({stats['error']})")
        if stats.get("running") is False:
            problems.append(f"{name}: its process has stopped (the station inspects on; restart it to get {name} back)")
        if stats.get("connected") is False:
            problems.append(f"{name}: not connected to the MQTT broker")
        if stats.get("outbox_disk_full"):
            problems.append(f"{name}: outbox disk full (new messages are not stored)")
        elif stats.get("outbox_full_alarm"):
            problems.append(f"{name}: outbox full (policy applied, messages dropped)")
    return problems


class ComponentCollector:
    """A prometheus_client collector over `component_stats() -> {name: stats dict}`."""

    def __init__(self, component_stats: Callable[[], dict[str, dict]]) -> None:
        self._component_stats = component_stats

    def collect(self) -> Iterator[Metric]:
        for name, stats in self._component_stats().items():
            if "error" in stats:
                continue
            exporter = _EXPORTERS.get(name)
            if exporter is not None:
                yield from exporter(stats)


def _gauge(name: str, doc: str, value) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value or 0))


def _counter(name: str, doc: str, value) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value or 0))


def _by_reason(name: str, doc: str, table: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=["reason"])
    for reason, n in sorted((table or {}).items()):
        family.add_metric([str(reason)], float(n))
    return family


def _mqtt(s: dict) -> Iterator[Metric]:
    yield _gauge("eiad_mqtt_connected", "1 while connected to the broker", s.get("connected"))
    yield _counter("eiad_mqtt_connects_total", "accepted connections", s.get("connects"))
    yield _counter("eiad_mqtt_connect_refusals_total", "connections refused by the broker", s.get("connect_refusals"))
    yield _gauge(
        "eiad_mqtt_last_refusal_code", "CONNACK reason code of the last refusal (0: none)", s.get("last_refusal_code")
    )
    yield _gauge("eiad_mqtt_inflight_messages", "published, not yet acknowledged", s.get("inflight"))
    yield _counter("eiad_mqtt_published_total", "outbox messages handed to the network", s.get("published"))
    yield _gauge("eiad_outbox_depth_rows", "messages waiting in the outbox", s.get("outbox_depth_rows"))
    yield _gauge("eiad_outbox_depth_bytes", "bytes waiting in the outbox", s.get("outbox_depth_bytes"))
    yield _gauge("eiad_outbox_full_alarm", "1 while the outbox is at a bound", s.get("outbox_full_alarm"))
    yield _gauge("eiad_outbox_disk_full", "1 while the outbox's disk refuses writes", s.get("outbox_disk_full"))
    yield _gauge(
        "eiad_outbox_corrupt_quarantined",
        "corrupt outbox files set aside at start",
        s.get("outbox_corrupt_quarantined"),
    )
    yield _by_reason("eiad_outbox_dropped_total", "messages dropped, by reason", s.get("dropped_by_reason"))
    yield _counter("eiad_outbox_acked_total", "messages acknowledged and deleted", s.get("acked"))
    yield _counter("eiad_outbox_replayed_total", "messages of an earlier run published again", s.get("replayed"))
    latency = GaugeMetricFamily(
        "eiad_publish_latency_seconds", "outbox write -> PUBACK over recent messages", labels=["quantile"]
    )
    for key, quantile in _QUANTILES:
        value_ms = (s.get("publish_latency_ms") or {}).get(key)
        if value_ms is not None:
            latency.add_metric([quantile], value_ms / 1e3)
    yield latency


def _explainer(s: dict) -> Iterator[Metric]:
    yield _gauge("eiad_explainer_backlog_parts", "parts waiting for an explanation", s.get("backlog"))
    yield _counter("eiad_explainer_produced_total", "explanations produced", s.get("produced", s.get("explained")))
    yield _counter(
        "eiad_explainer_dropped_total", "parts dropped from the backlog (policy or shutdown)", s.get("dropped")
    )
    yield _counter("eiad_explainer_failed_total", "explanations that failed", s.get("failed"))
    yield _counter(
        "eiad_explainer_inconsistent_total",
        "explanations the checker found disagreeing with their verdict, class or mask",
        s.get("inconsistent"),
    )
    if "explain_requests_accepted" in s:  # only when explainer.mqtt_requests is set
        yield _counter(
            "eiad_explain_requests_accepted_total",
            "MQTT explanation requests queued",
            s.get("explain_requests_accepted"),
        )
        yield _by_reason(
            "eiad_explain_requests_rejected_total",
            "MQTT explanation requests refused, by reason",
            s.get("explain_requests_rejected"),
        )


def _sparkplug(s: dict) -> Iterator[Metric]:
    yield _gauge("eiad_sparkplug_connected", "1 while the Sparkplug client is connected", s.get("connected"))
    yield _counter("eiad_sparkplug_published_total", "Sparkplug messages published (QoS 0)", s.get("published"))
    yield _by_reason(
        "eiad_sparkplug_dropped_total", "NDATA not published (at most once), by reason", s.get("dropped_by_reason")
    )


_EXPORTERS: dict[str, Callable[[dict], Iterator[Metric]]] = {
    "mqtt": _mqtt,
    "explainer": _explainer,
    "sparkplug": _sparkplug,
}
