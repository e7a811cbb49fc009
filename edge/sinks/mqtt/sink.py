"""The MQTT sink: verdict, mask and explanation messages through a durable outbox.

`handle()` runs on the camera loop: it builds the payloads, commits them to the outbox
(one SQLite transaction, ~0.5 ms) and wakes the dispatcher; it never raises. The
dispatcher thread (edge/sinks/mqtt/dispatch.py) is the only one that publishes outbox
rows: oldest first, at most `max_inflight` unacknowledged, deleted on PUBACK, replayed
in order after a reconnect or a restart.
Delivery is at least once; consumers de-duplicate on (inspection_id, kind).

Input: by default the station subscribes to nothing. `subscribe(topic, handler)` adds one
exact topic (QoS 1, re-subscribed after every reconnect); the handler gets the payload
bytes on paho's network thread and must only validate and enqueue (edge/explainer/requests.py).

Disk full: the outbox stores nothing (counted as `disk_full`); the messages it could not
store go to a bounded in-memory "live" queue the dispatcher publishes at QoS 1 when
connected, untracked (at most once: lost if the broker is down or the station stops).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge.results import InspectionResult
from edge.sinks.mqtt.client import ConnectionState, build_client, is_v5
from edge.sinks.mqtt.config import MqttSettings, check_credentials_transport, resolve_password
from edge.sinks.mqtt.dispatch import Dispatcher
from edge.sinks.mqtt.outbox.store import Outbox, OutgoingMessage
from edge.sinks.mqtt.payloads import build_verdict, encode_mask, stage_latencies_ms  # noqa: F401 (re-exported)
from eiad.messages import (
    MASK_CONTENT_TYPE,
    ExplanationMessage,
    OutboxStatsPayload,
    StatsMessage,
    StatusMessage,
    Topics,
    iso_utc,
)

log = logging.getLogger(__name__)

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
        self._closed = False
        self._lock = threading.Lock()  # guards _counts
        self._counts: Counter[str] = Counter()
        self._subscriptions: dict[str, Callable[[bytes], object]] = {}  # exact topic -> handler
        self._started_mono = time.monotonic()
        self._dispatcher = Dispatcher(self._client, outbox, settings, self._conn, self._count)
        self._live = self._dispatcher.live
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._dispatcher.on_publish
        self._dispatcher.start()
        self._client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
        self._client.loop_start()

    # ---- called by the pipeline -------------------------------------------------------
    def handle(self, result: InspectionResult, image=None) -> None:
        """Persist the verdict (and mask) then wake the dispatcher. Never raises."""
        try:
            stamps = {**result.stamps_ns, "published": time.monotonic_ns()}
            with_mask = result.mask is not None and (
                self._s.publish_masks == "all" or (self._s.publish_masks == "ng" and result.verdict == "NG")
            )
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
            meta = dict(meta)
            # The checker's verdict travels as fields of its own, so a consumer can filter on it.
            consistent, disagreements = meta.pop("consistent", None), meta.pop("disagreements", "")
            clean = {
                str(k): v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for k, v in meta.items()
            }
            msg = ExplanationMessage(
                inspection_id=inspection_id,
                station=self._s.station,
                line=self._s.line,
                text=text,
                consistent=consistent,
                disagreements=[d for d in str(disagreements or "").split(",") if d],
                published_at=iso_utc(time.time()),
                meta=clean,
            )
            self._store(
                [
                    OutgoingMessage(
                        "explanation",
                        self.topics.of("explanation"),
                        msg.to_json_bytes(),
                        f"{inspection_id}:explanation",
                    )
                ]
            )
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

    def subscribe(self, topic: str, handler: Callable[[bytes], object]) -> None:
        """Receive `topic` (exact, no wildcards) at QoS 1, now and after every reconnect;
        `handler(payload)` runs on paho's network thread: it must be quick and never block."""
        if any(ch in topic for ch in "+#"):
            raise ValueError(f"subscribe() takes an exact topic, not a filter: {topic!r}")

        def on_message(client, userdata, message) -> None:
            self._count("messages_received")
            try:
                handler(bytes(message.payload))
            except Exception:  # an input must never break the network thread
                log.exception("handler for %s failed", topic)
                self._count("message_handler_failed")

        with self._lock:
            self._subscriptions[topic] = handler
        self._client.message_callback_add(topic, on_message)
        if self._conn.connected.is_set():
            self._client.subscribe(topic, qos=1)  # also done on every (re)connect

    def publish_now(self, topic: str, payload: bytes) -> bool:
        """Publish once at QoS 0, untracked (not stored, not retried): for advisory replies.
        False (counted as `replies_skipped`) while disconnected."""
        if not self._conn.connected.is_set():
            self._count("replies_skipped")
            return False
        try:
            return self._client.publish(topic, payload, qos=0).rc == mqtt.MQTT_ERR_SUCCESS
        except (ValueError, RuntimeError) as exc:
            log.warning("reply on %s not published: %s", topic, exc)
            self._count("replies_skipped")
            return False

    def stats(self) -> dict:
        """Counters for health/metrics: connection, outbox and delivery figures."""
        conn, box = self._conn.snapshot(), self._outbox.stats()
        with self._lock:
            counts = dict(self._counts)
        return {
            "connected": conn.connected,
            "connects": conn.connects,
            "disconnects": conn.disconnects,
            "connect_refusals": conn.refusals,
            "last_refusal_code": conn.last_refusal_code,
            "last_refusal_reason": conn.last_refusal_reason,
            "outbox_depth_rows": box.depth_rows,
            "outbox_depth_bytes": box.depth_bytes,
            "outbox_full_alarm": box.full_alarm,
            "dropped_by_reason": box.dropped_by_reason,
            "stored": box.stored,
            "acked": box.acked,
            "inflight": self._dispatcher.inflight_count,
            "publish_latency_ms": self._dispatcher.latency_summary(),
            "outbox_disk_full": box.disk_full,
            "outbox_corrupt_quarantined": box.corrupt_quarantined,
            "last_sequence": box.last_sequence,
            "live_backlog": len(self._live),
            **counts,
        }

    def flush(self, timeout_s: float) -> bool:
        """Wait until every stored message is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._outbox.stats().depth_rows == 0 and self._dispatcher.inflight_count == 0:
                return True
            self._dispatcher.wake.set()
            time.sleep(0.02)
        return False

    def close(self) -> None:
        """Flush within `close_timeout_s`, publish retained `offline`, disconnect. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._dispatcher.stop(self._s.close_timeout_s)
        if self._conn.connected.is_set():
            try:
                info = self._client.publish(
                    self.topics.of("status"), self._status_payload("offline"), qos=1, retain=True
                )
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
        return OutgoingMessage("verdict", self.topics.of("verdict"), msg.to_json_bytes(), f"{r.inspection_id}:verdict")

    def _mask(self, r: InspectionResult) -> OutgoingMessage:
        # MQTT 3.1.1 has no properties: the inspection id goes into the topic instead.
        topic = self.topics.of("mask") if is_v5(self._s) else f"{self.topics.of('mask')}/{r.inspection_id}"
        props = {
            "content_type": MASK_CONTENT_TYPE,
            "user": [["inspection_id", r.inspection_id], ["sequence", str(r.sequence)]],
        }
        return OutgoingMessage("mask", topic, encode_mask(r), f"{r.inspection_id}:mask", properties=props)

    def _status_payload(self, state: str) -> bytes:
        return StatusMessage(
            station=self._s.station,
            line=self._s.line,
            state=state,  # type: ignore[arg-type]
            since=iso_utc(time.time()),
            client_id=self._s.effective_client_id,
        ).to_json_bytes()

    def _stats_message(self, pipeline: dict[str, float]) -> StatsMessage:
        box = self._outbox.stats()
        with self._lock:
            replayed = self._counts["replayed"]
        return StatsMessage(
            station=self._s.station,
            line=self._s.line,
            published_at=iso_utc(time.time()),
            uptime_s=round(time.monotonic() - self._started_mono, 3),
            connected=self._conn.connected.is_set(),
            outbox=OutboxStatsPayload(
                depth_rows=box.depth_rows,
                depth_bytes=box.depth_bytes,
                acked=box.acked,
                replayed=replayed,
                dropped_by_reason=box.dropped_by_reason,
                full_alarm=box.full_alarm,
            ),
            publish_latency_ms=self._dispatcher.latency_summary(),
            pipeline={k: float(v) for k, v in pipeline.items()},
        )

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
        self._dispatcher.wake.set()

    # ---- paho callbacks (network thread): record and wake, nothing slow ----------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._conn.on_connack(reason_code, self._s.host, self._s.port):
            client.publish(self.topics.of("status"), self._status_payload("online"), qos=1, retain=True)
            with self._lock:
                topics = list(self._subscriptions)
            for topic in topics:  # a clean session forgets subscriptions: renew them on every connect
                client.subscribe(topic, qos=1)
            self._dispatcher.wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._conn.on_lost(reason_code, expected=self._closed)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n
