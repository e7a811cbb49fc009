"""Values of the durable outbox (edge/sinks/mqtt/outbox/store.py): a message to deliver, a stored row, and
the counters. Frozen dataclasses: safe to share between threads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to deliver. `properties`: {"content_type": str, "user": [[k, v], ...]}
    (MQTT 5 publish properties; ignored on 3.1.1)."""

    kind: str
    topic: str
    payload: bytes
    dedup_key: str
    qos: int = 1
    retain: bool = False
    properties: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StoredMessage:
    """A row of the outbox: its id (replay order), the message, when it was stored (unix s)."""

    row_id: int
    message: OutgoingMessage
    created_unix_s: float


@dataclass(frozen=True)
class OutboxStats:
    """Current depth (rows, bytes) and counters since the process opened the outbox."""

    depth_rows: int
    depth_bytes: int
    stored: int
    acked: int
    dropped_by_reason: dict[str, int]
    full_alarm: bool
    backlog_at_open: int
    disk_full: bool = False
    corrupt_quarantined: int = 0
    last_sequence: int = 0
