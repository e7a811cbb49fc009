"""The MQTT sink's dispatcher: the one thread that hands outbox rows to paho.

It publishes rows oldest first, keeps at most `max_inflight` unacknowledged, and deletes
rows when paho reports their PUBACK (`on_publish`, mid -> row id; deletes batched, one
transaction per <= 20 ms or 64 rows, since each holds the outbox lock the camera loop's
put() needs: a row acked but not yet deleted is re-sent after a crash, a duplicate).
While disconnected nothing new is handed over; what paho already holds it re-sends
itself after reconnecting. After a restart it starts from the oldest row, so backlog is
replayed in order. Messages the outbox could not store (disk full) wait in `live` and
are published once, untracked, while connected.

Thread safety: `on_publish` is called from paho's thread, `wake`/`live`/`latency_summary`/
`inflight_count` from any thread; everything else runs on the dispatcher thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge.sinks.mqtt.client import ConnectionState, publish_properties
from edge.sinks.mqtt.config import MqttSettings
from edge.sinks.mqtt.outbox.store import Outbox, OutgoingMessage

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.2  # wakes at least this often to notice lost wake-ups and stop requests
_EXPIRE_EVERY_S = 60.0
_ACK_BATCH_S = 0.02
_ACK_BATCH_ROWS = 64


class Dispatcher:
    """Publishes the outbox through `client`; `count(name, n)` records the sink's counters."""

    def __init__(
        self,
        client: mqtt.Client,
        outbox: Outbox,
        settings: MqttSettings,
        conn: ConnectionState,
        count: Callable[[str, int], None],
    ) -> None:
        self._client, self._outbox, self._s, self._conn, self._count = client, outbox, settings, conn, count
        self.wake = threading.Event()
        self.live: deque[OutgoingMessage] = deque()  # not stored (disk full): published untracked
        self.inflight_count = 0
        self._acks: queue.SimpleQueue = queue.SimpleQueue()
        self._closing = threading.Event()
        self._flush_deadline = float("inf")
        self._lock = threading.Lock()  # guards _latencies_ms
        self._latencies_ms: deque[float] = deque(maxlen=2048)
        self._acked_rows: list[int] = []  # PUBACKed, not yet deleted (dispatcher thread only)
        self._ack_due = float("inf")
        self._thread = threading.Thread(target=self._run, name="mqtt-dispatch", daemon=True)

    def start(self) -> Dispatcher:
        self._thread.start()
        return self

    def on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        """paho's callback (network thread): record and wake, nothing slow."""
        self._acks.put((mid, reason_code))
        self.wake.set()

    def stop(self, flush_timeout_s: float) -> None:
        """Keep publishing until the outbox is empty or `flush_timeout_s` passed, then end."""
        self._flush_deadline = time.monotonic() + flush_timeout_s
        self._closing.set()
        self.wake.set()
        self._thread.join(flush_timeout_s + 5.0)

    def latency_summary(self) -> dict[str, float]:
        """Outbox write -> PUBACK over recent messages, ms: p50, p99, max ({} before any)."""
        with self._lock:
            values = sorted(self._latencies_ms)
        if not values:
            return {}
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
        return {"p50": round(pick(0.5), 3), "p99": round(pick(0.99), 3), "max": round(values[-1], 3)}

    def _run(self) -> None:
        inflight: dict[int, tuple[int, float]] = {}  # mid -> (row id, created unix s)
        cursor = 0
        seen_connects = 0
        next_expire = time.monotonic() + _EXPIRE_EVERY_S
        while True:
            self.wake.wait(min(_IDLE_WAIT_S, max(0.0, self._ack_due - time.monotonic())))
            self.wake.clear()
            try:
                self._drain_acks(inflight)
                if self._closing.is_set() and (
                    (not inflight and self._outbox.stats().depth_rows == 0) or time.monotonic() >= self._flush_deadline
                ):
                    return
                snap = self._conn.snapshot()
                if snap.connects != seen_connects:
                    if seen_connects and inflight:
                        self._count("resent_after_reconnect", len(inflight))  # paho re-sends them itself
                    seen_connects = snap.connects
                if snap.connected:
                    cursor = self._fill_window(cursor, inflight)
                    self._publish_live()
                if time.monotonic() >= next_expire:
                    self._outbox.expire()
                    next_expire = time.monotonic() + _EXPIRE_EVERY_S
            except Exception:
                log.exception("MQTT dispatcher error; retrying")
                self._count("dispatcher_errors", 1)
                time.sleep(_IDLE_WAIT_S)

    def _fill_window(self, cursor: int, inflight: dict[int, tuple[int, float]]) -> int:
        room = self._s.max_inflight - len(inflight)
        if room <= 0 or cursor >= self._outbox.newest_id:  # woken by a PUBACK only: nothing new to read
            return cursor
        for row in self._outbox.pending(cursor, room):
            m = row.message
            try:
                info = self._client.publish(
                    m.topic, m.payload, qos=m.qos, retain=m.retain, properties=publish_properties(self._s, m.properties)
                )
            except ValueError as exc:  # invalid topic/payload: retrying cannot help
                log.error("message %d on %s cannot be published (%s): discarded", row.row_id, m.topic, exc)
                self._outbox.discard([row.row_id], "unpublishable")
                cursor = row.row_id
                continue
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: paho queued it
                log.warning("paho refused message %d (rc %s); will retry", row.row_id, info.rc)
                self._count("publish_retry", 1)
                break
            inflight[info.mid] = (row.row_id, row.created_unix_s)
            cursor = row.row_id
            self._count("published", 1)
            if row.row_id <= self._outbox.last_id_at_open:
                self._count("replayed", 1)
        self.inflight_count = len(inflight)
        return cursor

    def _publish_live(self) -> None:
        """Messages the outbox could not store (disk full): one publish each, untracked."""
        while self.live:
            try:
                m = self.live.popleft()
            except IndexError:
                return
            try:
                self._client.publish(
                    m.topic, m.payload, qos=m.qos, retain=m.retain, properties=publish_properties(self._s, m.properties)
                )
                self._count("published_live", 1)
            except ValueError as exc:
                log.error("live message on %s cannot be published (%s): dropped", m.topic, exc)
                self._count("live_dropped", 1)

    def _drain_acks(self, inflight: dict[int, tuple[int, float]]) -> None:
        done, rejected, now = [], [], time.time()
        while True:
            try:
                mid, reason = self._acks.get_nowait()
            except queue.Empty:
                break
            entry = inflight.pop(mid, None)
            if entry is None:
                continue  # status messages and the like are not in the outbox
            if reason.is_failure:
                log.error("broker rejected message %d: %s; discarded", entry[0], reason)
                rejected.append(entry[0])
            else:
                done.append(entry[0])
                with self._lock:
                    self._latencies_ms.append((now - entry[1]) * 1e3)
        if done and not self._acked_rows:
            self._ack_due = time.monotonic() + _ACK_BATCH_S
        self._acked_rows.extend(done)
        if self._acked_rows and (
            len(self._acked_rows) >= _ACK_BATCH_ROWS or self._closing.is_set() or time.monotonic() >= self._ack_due
        ):
            rows, self._acked_rows, self._ack_due = self._acked_rows, [], float("inf")
            try:
                self._outbox.ack(rows)
            except Exception:  # e.g. disk full: keep them for the next try
                self._acked_rows, self._ack_due = rows + self._acked_rows, time.monotonic() + _IDLE_WAIT_S
                raise
        self._outbox.discard(rejected, "broker_rejected")
        self.inflight_count = len(inflight)
