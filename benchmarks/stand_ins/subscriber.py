"""A recording MQTT subscriber (paho 2.x, persistent session, QoS 1) for tests."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    properties: dict


class Subscriber:
    """Subscribes `topic_filter` at QoS 1 with a persistent MQTT 5 session (expiry 1 h), so
    messages published while it is disconnected are queued for it by the broker.
    Reconnects by itself. `messages` grows from paho's thread; read via `snapshot()`.
    With `username`/`password` (and `ca_file` for TLS) it logs in, for brokers with a
    password file and an ACL; `granted` holds the SUBACK's reason codes (0x80+ = refused)."""

    def __init__(
        self,
        port: int,
        topic_filter: str,
        client_id: str = "test-sub",
        host: str = "127.0.0.1",
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.topic_filter = topic_filter
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self.subscribed = threading.Event()
        self.granted: list[int] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file), cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(0.2, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async(host, port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.granted = [int(rc.value) for rc in reason_codes]
        self.subscribed.set()

    def _on_message(self, client, userdata, msg) -> None:
        props = {}
        if msg.properties is not None:
            for name in ("ContentType", "UserProperty"):
                if hasattr(msg.properties, name):
                    props[name] = getattr(msg.properties, name)
        with self._lock:
            self._messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), props))

    def snapshot(self, suffix: str | None = None) -> list[Received]:
        with self._lock:
            items = list(self._messages)
        return [m for m in items if suffix is None or m.topic.endswith(suffix)]

    def wait_for(self, predicate, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.02)
        return predicate(self.snapshot())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
