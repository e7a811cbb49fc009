"""Settings of the MQTT sink and its durable outbox (sections `mqtt:` and `outbox:` of the
station YAML). Validated once at start; no I/O here except `resolve_password`, which the
sink calls once at construction (never in the hot path)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from eiad.errors import ConfigError

_SPARKPLUG_ID = r"^[^/+#]+$"  # Sparkplug ids are topic levels: no '/', '+' or '#'


class TlsSettings(BaseModel):
    """TLS towards the broker. Leave `ca_file` empty to use the system trust store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = Field(default=None, description="PEM CA bundle that signed the broker")
    cert_file: Path | None = Field(default=None, description="Client certificate (PEM) for mTLS")
    key_file: Path | None = Field(default=None, description="Client private key (PEM) for mTLS")
    insecure_skip_hostname_check: bool = Field(
        default=False, description="Accept a broker certificate for another host name (test rigs only)"
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file must be given together (client certificate)")
        return self


class OutboxSettings(BaseModel):
    """The SQLite outbox every outgoing verdict/mask/explanation is written to first.

    When full, `policy` decides (each drop is counted by reason):
      - drop_oldest_masks_first: delete the oldest mask rows, then the oldest rows of any kind;
      - drop_oldest: delete the oldest rows of any kind;
      - refuse_new: keep the backlog, refuse the new message and raise `full_alarm`.
    Rows older than `max_age_s` are dropped as `expired` (0 = never).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(default=Path("outbox.sqlite3"), description="SQLite file (WAL); keep it on local disk")
    max_rows: int = Field(default=100_000, ge=1)
    max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    max_age_s: float = Field(default=7 * 24 * 3600.0, ge=0.0)
    policy: Literal["drop_oldest_masks_first", "drop_oldest", "refuse_new"] = "drop_oldest_masks_first"
    # NORMAL (default): in WAL mode a commit is in the WAL file before put() returns, so a
    # killed or crashed station process loses nothing; only a power cut / kernel crash can
    # undo the last commits. FULL also fsyncs every commit and survives power cuts, at a
    # price measured on this machine's shared disk: FULL ~4 ms p50 (0.4 ms when the disk
    # was idle) vs NORMAL ~0.1 ms p50 per verdict+mask commit, which the camera loop pays.
    synchronous: Literal["FULL", "NORMAL"] = "NORMAL"


class SparkplugSettings(BaseModel):
    """Optional Sparkplug B output for SCADA hosts (`mqtt.sparkplug:`), beside the JSON topics.

    A second MQTT session on the same broker (same host, port, TLS and credentials), clean
    session, QoS 0: at most once by design of Sparkplug; the JSON profile with the outbox is
    the lossless one. Topics `spBv1.0/<group_id>/<NBIRTH|NDATA|NDEATH>/<edge_node_id>`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["sparkplug"] = "sparkplug"
    group_id: str = Field(min_length=1, pattern=_SPARKPLUG_ID, description="Sparkplug group (e.g. the plant or area)")
    edge_node_id: str = Field(default="", pattern=rf"^$|{_SPARKPLUG_ID}", description="Empty: <line>-<station>")
    client_id: str = Field(default="", description="Empty: eiad-spb-<line>-<station>")
    queue_max: int = Field(
        default=256,
        ge=1,
        le=65536,
        description="NDATA waiting for the publisher thread; beyond it the oldest is dropped (counted)",
    )


class MqttSettings(BaseModel):
    """Broker connection and topics. Topics are `<topic_prefix>/<line>/<station>/<kind>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT protocol version")
    client_id: str = Field(default="", description="Empty: eiad-<line>-<station>")
    topic_prefix: str = "eiad"
    line: str = Field(min_length=1)
    station: str = Field(min_length=1)
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_delay_s: float = Field(default=1.0, gt=0)
    reconnect_max_delay_s: float = Field(default=60.0, gt=0)
    max_inflight: int = Field(default=64, ge=1, le=65535, description="Unacknowledged QoS 1 messages on the wire")
    publish_masks: Literal["ng", "all", "none"] = Field(default="ng", description="Which verdicts get a mask message")
    close_timeout_s: float = Field(default=5.0, ge=0, description="How long close() waits to flush the outbox")
    stats_interval_s: float = Field(
        default=10.0, ge=0, description="Publish the stats topic (QoS 0) this often, from its own thread; 0 = off"
    )
    username: str | None = None
    password_env: str | None = Field(
        default=None, description="Name of the environment variable holding the password (never the password)"
    )
    tls: TlsSettings | None = None
    allow_plaintext_credentials: bool = Field(
        default=False, description="Send username/password without TLS (isolated test networks only)"
    )
    sparkplug: SparkplugSettings | None = Field(
        default=None, description="Also publish Sparkplug B (NBIRTH/NDATA/NDEATH) for SCADA hosts; omit for none"
    )

    @model_validator(mode="after")
    def _credentials_need_tls(self) -> MqttSettings:
        if self.password_env and not self.username:
            raise ValueError("mqtt.password_env is set but mqtt.username is empty: set both or neither")
        if self.username and self.tls is None and not self.allow_plaintext_credentials:
            raise ValueError(
                "mqtt.username is set but mqtt.tls is not: credentials would travel in clear text. "
                "Configure mqtt.tls, or set mqtt.allow_plaintext_credentials: true on an isolated network"
            )
        if self.reconnect_max_delay_s < self.reconnect_min_delay_s:
            raise ValueError("mqtt.reconnect_max_delay_s must be >= mqtt.reconnect_min_delay_s")
        return self

    @property
    def effective_client_id(self) -> str:
        return self.client_id or f"eiad-{self.line}-{self.station}"


def resolve_password(settings: MqttSettings, environ: dict[str, str] | None = None) -> str | None:
    """The broker password from the environment variable named by `password_env`.

    Raises ConfigError naming the variable (never its value) when it is unset.
    """
    if not settings.password_env:
        return None
    env = os.environ if environ is None else environ
    value = env.get(settings.password_env)
    if value is None:
        raise ConfigError(
            f"mqtt.password_env names the environment variable {settings.password_env!r}, "
            "which is not set: export it before starting the station"
        )
    return value


def check_credentials_transport(settings: MqttSettings) -> None:
    """Refuse credentials over plain TCP unless allowed (the validator already does this;
    this guards settings built with `model_construct`)."""
    if settings.username and settings.tls is None and not settings.allow_plaintext_credentials:
        raise ConfigError(
            "mqtt.username is set without mqtt.tls: refusing to send credentials in clear text "
            "(set mqtt.allow_plaintext_credentials: true to override)"
        )
