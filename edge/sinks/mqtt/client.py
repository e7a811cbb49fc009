"""Building and watching the paho-mqtt 2.x client (callback API v2) for the MQTT sink.

`ConnectionState` is written by paho's network thread and read by any thread; its
fields are guarded by a lock (the `connected` Event needs none).
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.sinks.mqtt.config import MqttSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionSnapshot:
    connected: bool
    connects: int
    disconnects: int
    refusals: int
    last_refusal_code: int | None
    last_refusal_reason: str


class ConnectionState:
    """Connection facts reported by paho callbacks; read with `snapshot()`."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._connects = 0
        self._disconnects = 0
        self._refusals = 0
        self._last_refusal_code: int | None = None
        self._last_refusal_reason = ""

    def on_connack(self, reason_code: mqtt.ReasonCode, host: str, port: int) -> bool:
        """Record a CONNACK; True when the connection was accepted."""
        with self._lock:
            if reason_code.is_failure:
                self._refusals += 1
                self._last_refusal_code = int(reason_code.value)
                self._last_refusal_reason = str(reason_code)
                self.connected.clear()
                accepted = False
            else:
                self._connects += 1
                self.connected.set()
                accepted = True
        if accepted:
            log.info("connected to MQTT broker %s:%d", host, port)
        else:
            # Never log credentials: the reason is enough to act on.
            log.error(
                "MQTT broker %s:%d refused the connection: %s (CONNACK code %d); check "
                "mqtt.username / the password variable / TLS settings",
                host,
                port,
                reason_code,
                int(reason_code.value),
            )
        return accepted

    def on_lost(self, reason_code: mqtt.ReasonCode, expected: bool = False) -> None:
        with self._lock:
            was = self.connected.is_set()
            self.connected.clear()
            if was:
                self._disconnects += 1
        if was and expected:
            log.info("disconnected from the MQTT broker")
        elif was:
            log.warning("MQTT connection lost (%s); reconnecting with back-off", reason_code)

    def snapshot(self) -> ConnectionSnapshot:
        with self._lock:
            return ConnectionSnapshot(
                self.connected.is_set(),
                self._connects,
                self._disconnects,
                self._refusals,
                self._last_refusal_code,
                self._last_refusal_reason,
            )


def is_v5(settings: MqttSettings) -> bool:
    return settings.protocol == "5"


def build_client(settings: MqttSettings, password: str | None, will_topic: str, will_payload: bytes) -> mqtt.Client:
    """A configured, not yet connected client: protocol, credentials, TLS, last will,
    in-flight window and reconnect back-off."""
    protocol = mqtt.MQTTv5 if is_v5(settings) else mqtt.MQTTv311
    kwargs = {} if is_v5(settings) else {"clean_session": True}
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=settings.effective_client_id,
        protocol=protocol,
        **kwargs,
    )
    client.enable_logger(logging.getLogger("paho.mqtt"))
    # Our own window is the bound; paho's must not be smaller or it would queue behind us.
    client.max_inflight_messages_set(settings.max_inflight)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(settings.reconnect_min_delay_s, settings.reconnect_max_delay_s)
    if settings.username:
        client.username_pw_set(settings.username, password)
    if settings.tls is not None:
        tls = settings.tls
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(tls.insecure_skip_hostname_check)
    client.will_set(will_topic, will_payload, qos=1, retain=True)
    return client


def publish_properties(settings: MqttSettings, props: dict) -> Properties | None:
    """MQTT 5 PUBLISH properties from the outbox's JSON form; None on 3.1.1."""
    if not is_v5(settings) or not props:
        return None
    properties = Properties(PacketTypes.PUBLISH)
    if props.get("content_type"):
        properties.ContentType = props["content_type"]
    user = [tuple(pair) for pair in props.get("user", [])]
    if user:
        properties.UserProperty = user
    return properties
