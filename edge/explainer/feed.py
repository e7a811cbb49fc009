"""The explainer as the station's last sink: each result offered to it (never blocking),
and the wiring of explanation requests over MQTT."""

from __future__ import annotations

import dataclasses
import logging

from edge.config import StationConfig
from edge.results import InspectionResult
from edge.sinks.base import Sink, explanation_sinks
from eiad.errors import ConfigError

log = logging.getLogger(__name__)


class ExplainerFeed:
    """Offers each result to the explainer (never blocks: it has its own bounded backlog).
    With `requests` (edge/explainer/requests.py) its stats also count MQTT explanation requests."""

    def __init__(self, explainer, requests=None) -> None:
        self._explainer = explainer
        self.requests = requests

    @property
    def explainer(self):
        """The Explainer this feed offers results to (benchmarks drain and warm it up)."""
        return self._explainer

    def handle(self, result: InspectionResult, image=None) -> None:
        self._explainer.submit(result, image)

    def stats(self) -> dict:
        """The explainer's counters (backlog, dropped, explained, ...) for health/metrics."""
        stats = dataclasses.asdict(self._explainer.stats())
        if self.requests is not None:
            stats.update(self.requests.stats())
        return stats

    def close(self) -> None:
        self._explainer.close()  # finishes or drops its backlog before the sinks close


def explainer_feed(config: StationConfig, sinks: dict[str, Sink]) -> ExplainerFeed:
    """The explainer (started) over every publishing sink in `sinks`, to be called last in
    the sink order; with `explainer.mqtt_requests`, the MQTT sink subscribes to the
    station's explain/request topic and feeds it. Also wires `eiad bench line`'s loop."""
    from edge.explainer.worker import build_explainer

    settings = config.explainer.mqtt_requests
    if settings is not None and "mqtt" not in sinks:
        raise ConfigError(
            "explainer.mqtt_requests is set but the station has no mqtt: section: "
            "add mqtt: (broker, line, station) or remove explainer.mqtt_requests"
        )
    if settings is None and config.explainer.mode == "on_request":
        log.warning(
            "explainer.mode is on_request but explainer.mqtt_requests is not set: "
            "nothing can request an explanation; add explainer.mqtt_requests: {}"
        )
    publishers = explanation_sinks(sinks.values())
    explainer = build_explainer(config.path(config.artifact), publishers, config.explainer).start()
    if settings is None:
        return ExplainerFeed(explainer)
    from edge.explainer.requests import ExplainRequests

    mqtt_sink = sinks["mqtt"]
    requests = ExplainRequests(explainer, config.station_id, mqtt_sink.topics, settings, mqtt_sink.publish_now)
    mqtt_sink.subscribe(requests.topic, requests.handle)
    log.info("accepting explanation requests on %s (answers on %s)", requests.topic, requests.response_topic)
    return ExplainerFeed(explainer, requests)
