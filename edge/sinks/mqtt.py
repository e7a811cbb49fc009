"""The MQTT sink: verdict, mask and explanation messages through a durable outbox.

`handle()` runs on the camera loop: it builds the payloads, commits them to the outbox
(one SQLite transaction, ~0.5 ms) and wakes the dispatcher; it never raises. The
dispatcher thread is the only one that calls `publish()`: it hands rows to paho oldest
first, keeps at most `max_inflight` unacknowledged, and deletes rows when paho reports
their PUBACK (`on_publish`, mid -> row id). While disconnected nothing new is handed
over; what paho already holds it re-sends itself after reconnecting. After a restart
the dispatcher starts from the oldest row, so backlog is replayed in order.
Delivery is at least once; consumers de-duplicate on (inspection_id, kind).

Disk full: the outbox stores nothing (counted as `disk_full`); the messages it could not
store go to a bounded in-memory "live" queue the dispatcher publishes at QoS 1 when
connected, untracked (at most once: lost if the broker is down or the station stops).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque

import paho.mqtt.client as mqtt

from eiad.messages import (MASK_CONTENT_TYPE, ExplanationMessage, OutboxStatsPayload, StatsMessage, StatusMessage,
                           Topics, iso_utc)
from edge.outbox import Outbox, OutgoingMessage
from edge.results import InspectionResult
from edge.sinks.mqtt_payloads import build_verdict, encode_mask, stage_latencies_ms  # noqa: F401 (re-exported)
from edge.sinks.mqtt_client import ConnectionState, build_client, is_v5, publish_properties
from edge.sinks.mqtt_config import MqttSettings, check_credentials_transport, resolve_password

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.2  # dispatcher wakes at least this often to notice lost wake-ups and stop requests
_EXPIRE_EVERY_S = 60.0
# PUBACKed rows are deleted in batches (one transaction per <= 20 ms or 64 rows) rather
# than one transaction per PUBACK: each delete holds the outbox lock that the camera
# loop's put() needs. A row acked but not yet deleted is re-sent after a crash (a duplicate).
_ACK_BATCH_S = 0.02
_ACK_BATCH_ROWS = 64
_LIVE_MAX = 1000  # messages kept for live publishing while the outbox's disk is full


class MqttSink:
    """Publishes results over MQTT with a durable outbox. Connects in the background on
    construction; owns `outbox` from then on (closes it in `close()`).

    Thread safety: `handle`, `handle_explanation`, `publish_stats` and `stats` may be called
    from any thread; `close` once from the owner.
    """

    def __init__(self, settings: MqttSettings, outbox: Outbox, *, environ: dict[str, str] | None = None) -> None:
        check_credentials_transport(settings)
        password = resolve_password(settings, environ)
        self._s = settings
        self._outbox = outbox
        self.topics = Topics(settings.topic_prefix, settings.line, settings.station)
        self._conn = ConnectionState()
        self._client = build_client(settings, password, self.topics.of("status"), self._status_payload("offline"))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._acks: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._closed = False
        self._lock = threading.Lock()  # guards _counts and _latencies_ms
        self._counts: Counter[str] = Counter()
        self._latencies_ms: deque[float] = deque(maxlen=2048)
        self._inflight_count = 0
        self._live: deque[OutgoingMessage] = deque()  # not stored (disk full): published untracked
        self._acked_rows: list[int] = []  # PUBACKed, not yet deleted (dispatcher thread only)
        self._ack_due = float("inf")
        self._started_mono = time.monotonic()
        self._flush_deadline = float("inf")
        self._dispatcher = threading.Thread(target=self._run, name="mqtt-dispatch", daemon=True)
        self._dispatcher.start()
        self._client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
        self._client.loop_start()

    # ---- called by the pipeline -------------------------------------------------------
    def handle(self, result: InspectionResult) -> None:
        """Persist the verdict (and mask) then wake the dispatcher. Never raises."""
        try:
            stamps = {**result.stamps_ns, "published": time.monotonic_ns()}
            with_mask = result.mask is not None and (
                self._s.publish_masks == "all" or (self._s.publish_masks == "ng" and result.verdict == "NG"))
            messages = [self._verdict(result, stamps, with_mask)]
            if with_mask:
                messages.append(self._mask(result))
            self._store(messages, result.sequence)
        except Exception:
            log.exception("MQTT sink could not store verdict %s", getattr(result, "inspection_id", "?"))
            self._count("handle_failed")

    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        """Persist an explanation for an earlier verdict; never raises."""
        try:
            clean = {str(k): v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
                     for k, v in meta.items()}
            msg = ExplanationMessage(inspection_id=inspection_id, station=self._s.station, line=self._s.line,
                                     text=text, published_at=iso_utc(time.time()), meta=clean)
            self._store([OutgoingMessage("explanation", self.topics.of("explanation"), msg.to_json_bytes(),
                                         f"{inspection_id}:explanation")])
        except Exception:
            log.exception("MQTT sink could not store the explanation for %s", inspection_id)
            self._count("handle_failed")

    def publish_stats(self, pipeline: dict[str, float] | None = None) -> bool:
        """Publish one stats message (QoS 0) now; False (counted) when not connected."""
        if not self._conn.connected.is_set():
            self._count("stats_skipped")
            return False
        try:
            msg = self._stats_message(pipeline or {})
            info = self._client.publish(self.topics.of("stats"), msg.to_json_bytes(), qos=0)
            return info.rc == mqtt.MQTT_ERR_SUCCESS
        except Exception:
            log.exception("MQTT sink could not publish stats")
            self._count("stats_failed")
            return False

    def stats(self) -> dict:
        """Counters for health/metrics: connection, outbox and delivery figures."""
        conn, box = self._conn.snapshot(), self._outbox.stats()
        with self._lock:
            counts = dict(self._counts)
        return {
            "connected": conn.connected, "connects": conn.connects, "disconnects": conn.disconnects,
            "connect_refusals": conn.refusals, "last_refusal_code": conn.last_refusal_code,
            "last_refusal_reason": conn.last_refusal_reason, "outbox_depth_rows": box.depth_rows,
            "outbox_depth_bytes": box.depth_bytes, "outbox_full_alarm": box.full_alarm,
            "dropped_by_reason": box.dropped_by_reason, "stored": box.stored, "acked": box.acked,
            "inflight": self._inflight_count, "publish_latency_ms": self._latency_summary(),
            "outbox_disk_full": box.disk_full, "outbox_corrupt_quarantined": box.corrupt_quarantined,
            "last_sequence": box.last_sequence, "live_backlog": len(self._live), **counts,
        }

    def flush(self, timeout_s: float) -> bool:
        """Wait until every stored message is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._outbox.stats().depth_rows == 0 and self._inflight_count == 0:
                return True
            self._wake.set()
            time.sleep(0.02)
        return False

    def close(self) -> None:
        """Flush within `close_timeout_s`, publish retained `offline`, disconnect. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._flush_deadline = time.monotonic() + self._s.close_timeout_s
        self._closing.set()
        self._wake.set()
        self._dispatcher.join(self._s.close_timeout_s + 5.0)
        if self._conn.connected.is_set():
            try:
                info = self._client.publish(self.topics.of("status"), self._status_payload("offline"),
                                            qos=1, retain=True)
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish offline status: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()
        if self._live:
            log.error("%d messages that could not be stored (disk full) were never published: lost", len(self._live))
            self._count("live_dropped", len(self._live))
            self._live.clear()
        left = self._outbox.stats().depth_rows
        if left:
            log.warning("MQTT sink closed with %d unsent messages kept in the outbox for the next start", left)
        self._outbox.close()

    # ---- payloads ---------------------------------------------------------------------
    def _verdict(self, r: InspectionResult, stamps: dict[str, int], with_mask: bool) -> OutgoingMessage:
        msg = build_verdict(r, self._s.station, self._s.line, time.time(), stamps, with_mask)
        return OutgoingMessage("verdict", self.topics.of("verdict"), msg.to_json_bytes(),
                               f"{r.inspection_id}:verdict")

    def _mask(self, r: InspectionResult) -> OutgoingMessage:
        # MQTT 3.1.1 has no properties: the inspection id goes into the topic instead.
        topic = self.topics.of("mask") if is_v5(self._s) else f"{self.topics.of('mask')}/{r.inspection_id}"
        props = {"content_type": MASK_CONTENT_TYPE,
                 "user": [["inspection_id", r.inspection_id], ["sequence", str(r.sequence)]]}
        return OutgoingMessage("mask", topic, encode_mask(r), f"{r.inspection_id}:mask", properties=props)

    def _status_payload(self, state: str) -> bytes:
        return StatusMessage(station=self._s.station, line=self._s.line, state=state,  # type: ignore[arg-type]
                             since=iso_utc(time.time()), client_id=self._s.effective_client_id).to_json_bytes()

    def _stats_message(self, pipeline: dict[str, float]) -> StatsMessage:
        box = self._outbox.stats()
        with self._lock:
            replayed = self._counts["replayed"]
        return StatsMessage(
            station=self._s.station, line=self._s.line, published_at=iso_utc(time.time()),
            uptime_s=round(time.monotonic() - self._started_mono, 3), connected=self._conn.connected.is_set(),
            outbox=OutboxStatsPayload(depth_rows=box.depth_rows, depth_bytes=box.depth_bytes, acked=box.acked,
                                      replayed=replayed, dropped_by_reason=box.dropped_by_reason,
                                      full_alarm=box.full_alarm),
            publish_latency_ms=self._latency_summary(), pipeline={k: float(v) for k, v in pipeline.items()})

    def _store(self, messages: list[OutgoingMessage], sequence: int | None = None) -> None:
        ids = self._outbox.put_many(messages, sequence)
        refused = [m for m, i in zip(messages, ids) if i is None]
        if refused:
            self._count("refused_by_outbox", len(refused))
            if self._outbox.disk_full:
                self._live.extend(refused)
                excess = len(self._live) - _LIVE_MAX
                for _ in range(max(0, excess)):
                    try:
                        self._live.popleft()  # the dispatcher may have taken it meanwhile
                    except IndexError:
                        break
                    self._count("live_dropped")
        self._wake.set()

    # ---- paho callbacks (network thread): record and wake, nothing slow ----------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._conn.on_connack(reason_code, self._s.host, self._s.port):
            client.publish(self.topics.of("status"), self._status_payload("online"), qos=1, retain=True)
            self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._conn.on_lost(reason_code, expected=self._closed)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.put((mid, reason_code))
        self._wake.set()

    # ---- dispatcher thread --------------------------------------------------------------
    def _run(self) -> None:
        inflight: dict[int, tuple[int, float]] = {}  # mid -> (row id, created unix s)
        cursor = 0
        seen_connects = 0
        next_expire = time.monotonic() + _EXPIRE_EVERY_S
        while True:
            self._wake.wait(min(_IDLE_WAIT_S, max(0.0, self._ack_due - time.monotonic())))
            self._wake.clear()
            try:
                self._drain_acks(inflight)
                if self._closing.is_set() and (
                        (not inflight and self._outbox.stats().depth_rows == 0)
                        or time.monotonic() >= self._flush_deadline):
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
                self._count("dispatcher_errors")
                time.sleep(_IDLE_WAIT_S)

    def _fill_window(self, cursor: int, inflight: dict[int, tuple[int, float]]) -> int:
        room = self._s.max_inflight - len(inflight)
        if room <= 0:
            return cursor
        for row in self._outbox.pending(cursor, room):
            m = row.message
            try:
                info = self._client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain,
                                            properties=publish_properties(self._s, m.properties))
            except ValueError as exc:  # invalid topic/payload: retrying cannot help
                log.error("message %d on %s cannot be published (%s): discarded", row.row_id, m.topic, exc)
                self._outbox.discard([row.row_id], "unpublishable")
                cursor = row.row_id
                continue
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: paho queued it
                log.warning("paho refused message %d (rc %s); will retry", row.row_id, info.rc)
                self._count("publish_retry")
                break
            inflight[info.mid] = (row.row_id, row.created_unix_s)
            cursor = row.row_id
            self._count("published")
            if row.row_id <= self._outbox.last_id_at_open:
                self._count("replayed")
        self._inflight_count = len(inflight)
        return cursor

    def _publish_live(self) -> None:
        """Messages the outbox could not store (disk full): one publish each, untracked."""
        while self._live:
            try:
                m = self._live.popleft()
            except IndexError:
                return
            try:
                self._client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain,
                                     properties=publish_properties(self._s, m.properties))
                self._count("published_live")
            except ValueError as exc:
                log.error("live message on %s cannot be published (%s): dropped", m.topic, exc)
                self._count("live_dropped")

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
        if self._acked_rows and (len(self._acked_rows) >= _ACK_BATCH_ROWS or self._closing.is_set()
                                 or time.monotonic() >= self._ack_due):
            rows, self._acked_rows, self._ack_due = self._acked_rows, [], float("inf")
            try:
                self._outbox.ack(rows)
            except Exception:  # e.g. disk full: keep them for the next try
                self._acked_rows, self._ack_due = rows + self._acked_rows, time.monotonic() + _IDLE_WAIT_S
                raise
        self._outbox.discard(rejected, "broker_rejected")
        self._inflight_count = len(inflight)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _latency_summary(self) -> dict[str, float]:
        with self._lock:
            values = sorted(self._latencies_ms)
        if not values:
            return {}
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
        return {"p50": round(pick(0.5), 3), "p99": round(pick(0.99), 3), "max": round(values[-1], 3)}
