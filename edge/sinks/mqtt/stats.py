"""The MQTT sink's periodic stats message, published from its own thread."""

from __future__ import annotations

import logging
import threading

from edge.health.metrics import Metrics

log = logging.getLogger(__name__)


class StatsPublisher:
    """Publishes the MQTT sink's stats message with the pipeline's counters every
    `interval_s` from its own daemon thread (never from the camera loop: building the
    message reads the outbox under its lock). `close()` stops it; idempotent."""

    def __init__(self, sink, metrics: Metrics, interval_s: float) -> None:
        self._sink, self._metrics, self._interval_s = sink, metrics, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-stats", daemon=True)

    def start(self) -> StatsPublisher:
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
