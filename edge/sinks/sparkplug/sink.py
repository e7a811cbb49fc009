"""Sparkplug B output for SCADA hosts: NBIRTH, one NDATA per inspection, NDEATH.

Its own MQTT session beside the JSON sink's (same broker, TLS and credentials), as the
Sparkplug B 3.0 specification asks of an edge node:
  - topics `spBv1.0/<group_id>/<NBIRTH|NDATA|NDEATH>/<edge_node_id>`;
  - clean session (MQTT 5: clean start on every connect, session expiry 0);
  - NDEATH is the MQTT last will (QoS 1, not retained) carrying `bdSeq`; `bdSeq` counts
    connections 0..255 and the NBIRTH after each connect carries the same value as the
    will registered with that CONNECT, so a host can pair a death with its birth;
  - NBIRTH (seq 0) declares every metric with name, alias, datatype and current value;
    NDATA (seq 1..255, then 0, ...) carries the aliases only; QoS 0, not retained.
Metrics: Inspection/Verdict (String), Inspection/Score (Double), Inspection/DefectClass
(String, null for OK), Inspection/Sequence (UInt64), Inspection/Id (String), Model/Id
(String), plus bdSeq and Node Control/Rebirth in the birth.

At most once, by design (QoS 0, nothing stored): an inspection while disconnected is
dropped and counted (`dropped_by_reason["disconnected"]`); the JSON profile with its
outbox is the lossless one. The station subscribes to nothing, so it never sees NCMD:
a host's rebirth request is not answered (a reconnect always re-births).

`handle()` (camera loop) only queues the values; a publisher thread assigns `seq` and
publishes, so `seq` order is wire order. Thread safety: `handle`, `stats` from any
thread; `close` once from the owner.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque

import paho.mqtt.client as mqtt

from edge.results import InspectionResult
from edge.sinks.mqtt.client import ConnectionState, build_client, is_v5
from edge.sinks.mqtt.config import MqttSettings, SparkplugSettings, check_credentials_transport, resolve_password
from edge.sinks.sparkplug.payload import BOOLEAN, DOUBLE, STRING, UINT64, Metric, Payload, encode_payload

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
# name -> (alias, datatype); aliases are stable for the station's life.
INSPECTION_METRICS = {
    "Inspection/Verdict": (1, STRING),
    "Inspection/Score": (2, DOUBLE),
    "Inspection/DefectClass": (3, STRING),
    "Inspection/Sequence": (4, UINT64),
    "Inspection/Id": (5, STRING),
}
MODEL_ID = ("Model/Id", 6, STRING)
_IDLE_WAIT_S = 0.2


def topic(group_id: str, message_type: str, edge_node_id: str) -> str:
    return f"{NAMESPACE}/{group_id}/{message_type}/{edge_node_id}"


class SparkplugSink:
    """Publishes results as Sparkplug B NDATA; connects in the background on construction."""

    def __init__(self, settings: MqttSettings, model_id: str = "", *, environ: dict[str, str] | None = None) -> None:
        if settings.sparkplug is None:
            raise ValueError("SparkplugSink needs mqtt.sparkplug settings")
        check_credentials_transport(settings)
        sp: SparkplugSettings = settings.sparkplug
        self._s, self._sp, self._model_id = settings, sp, model_id
        self.node_id = sp.edge_node_id or f"{settings.line}-{settings.station}"
        self.topics = {kind: topic(sp.group_id, kind, self.node_id) for kind in ("NBIRTH", "NDATA", "NDEATH")}
        self._conn = ConnectionState()
        self._lock = threading.Lock()  # guards _queue, _counts, _last, _next_bdseq
        self._queue: deque[dict] = deque()
        self._counts: Counter[str] = Counter()
        self._last: dict = {name: None for name in INSPECTION_METRICS}  # values for the next birth
        self._next_bdseq = 0  # the bdSeq of the will registered for the next CONNECT
        self._bdseq = 0
        self._seq = 0
        self._birth_due = threading.Event()
        self._born = threading.Event()  # NBIRTH sent on this connection: NDATA may follow
        self._wake = threading.Event()
        self._stop = threading.Event()
        client_id = sp.client_id or f"eiad-spb-{settings.line}-{settings.station}"
        self._client = build_client(
            settings.model_copy(update={"client_id": client_id}),
            resolve_password(settings, environ),
            self.topics["NDEATH"],
            self._death(0),
        )
        self._client.will_set(self.topics["NDEATH"], self._death(0), qos=1, retain=False)  # spec: not retained
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._thread = threading.Thread(target=self._run, name="sparkplug-publish", daemon=True)
        self._thread.start()
        clean = {"clean_start": True} if is_v5(settings) else {}  # 3.1.1: clean_session set by build_client
        self._client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s, **clean)
        self._client.loop_start()

    def handle(self, result: InspectionResult, image=None) -> None:
        """Queue one inspection's values for an NDATA; never blocks, never raises."""
        values = {
            "Inspection/Verdict": result.verdict,
            "Inspection/Score": float(result.score),
            "Inspection/DefectClass": result.defect_class,
            "Inspection/Sequence": int(result.sequence),
            "Inspection/Id": result.inspection_id,
            "_ts": int(result.captured_unix_s * 1000),
        }
        if not self._model_id:
            self._model_id = result.model_id
        with self._lock:
            if not self._conn.connected.is_set():
                self._counts["dropped_disconnected"] += 1  # at most once: nothing is stored
                return
            self._queue.append(values)
            if len(self._queue) > self._sp.queue_max:
                self._queue.popleft()
                self._counts["dropped_queue_full"] += 1
        self._wake.set()

    def stats(self) -> dict:
        with self._lock:
            counts = dict(self._counts)
            backlog = len(self._queue)
        dropped = {k.removeprefix("dropped_"): v for k, v in counts.items() if k.startswith("dropped_")}
        return {
            "connected": self._conn.connected.is_set(),
            "published": counts.get("published", 0),
            "births": counts.get("births", 0),
            "bdseq": self._bdseq,
            "seq": self._seq,
            "backlog": backlog,
            "dropped_by_reason": dropped,
            "node": self.topics["NBIRTH"],
        }

    def close(self, timeout_s: float = 2.0) -> None:
        """Publish what is queued (within `timeout_s`), then NDEATH, then disconnect. Idempotent."""
        if self._stop.is_set():
            return
        deadline = time.monotonic() + timeout_s
        while self._queue and self._conn.connected.is_set() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s + 1.0)
        if self._conn.connected.is_set():  # a clean DISCONNECT suppresses the will: say it ourselves
            info = self._client.publish(self.topics["NDEATH"], self._death(self._bdseq), qos=1)
            info.wait_for_publish(timeout=1.0)
        self._client.disconnect()
        self._client.loop_stop()

    # ---- payloads ----------------------------------------------------------------------
    def _death(self, bdseq: int) -> bytes:
        return encode_payload(Payload(int(time.time() * 1000), (Metric("bdSeq", None, UINT64, bdseq),)))

    def _birth(self) -> bytes:
        now = int(time.time() * 1000)
        with self._lock:
            last = dict(self._last)
        metrics = [
            Metric("bdSeq", None, UINT64, self._bdseq, now),
            Metric("Node Control/Rebirth", None, BOOLEAN, False, now),
            Metric(MODEL_ID[0], MODEL_ID[1], MODEL_ID[2], self._model_id, now),
        ]
        metrics += [
            Metric(name, alias, datatype, last[name], now) for name, (alias, datatype) in INSPECTION_METRICS.items()
        ]
        return encode_payload(Payload(now, tuple(metrics), seq=0))

    def _data(self, values: dict, seq: int) -> bytes:
        ts = values["_ts"]
        metrics = tuple(Metric(None, alias, None, values[name], ts) for name, (alias, _) in INSPECTION_METRICS.items())
        return encode_payload(Payload(int(time.time() * 1000), metrics, seq=seq))

    # ---- paho callbacks (network thread) -----------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._born.clear()
        if not self._conn.on_connack(reason_code, self._s.host, self._s.port):
            return
        with self._lock:
            self._bdseq = self._next_bdseq  # the will sent with this CONNECT carries it
            self._next_bdseq = (self._bdseq + 1) % 256
            client.will_set(self.topics["NDEATH"], self._death(self._next_bdseq), qos=1, retain=False)
        self._birth_due.set()
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._born.clear()
        self._conn.on_lost(reason_code, expected=self._stop.is_set())

    # ---- publisher thread ----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(_IDLE_WAIT_S)
            self._wake.clear()
            try:
                self._publish_pending()
            except Exception:
                log.exception("Sparkplug publisher error; going on")
                self._count("publish_errors")
        self._publish_pending()

    def _publish_pending(self) -> None:
        if not self._conn.connected.is_set():
            with self._lock:
                if self._queue:
                    self._counts["dropped_disconnected"] += len(self._queue)
                    self._queue.clear()
            return
        if self._birth_due.is_set():
            self._birth_due.clear()
            self._seq = 0
            self._publish(self.topics["NBIRTH"], self._birth())
            self._count("births")
            self._born.set()
        while self._born.is_set():
            with self._lock:
                if not self._queue:
                    return
                values = self._queue.popleft()
                self._last = {name: values[name] for name in INSPECTION_METRICS}
            self._seq = (self._seq + 1) % 256
            self._publish(self.topics["NDATA"], self._data(values, self._seq))

    def _publish(self, topic_name: str, payload: bytes) -> None:
        info = self._client.publish(topic_name, payload, qos=0, retain=False)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self._count("published")
        else:
            self._count("dropped_publish_failed")

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n
