"""A durable, bounded outbox: every outgoing message is committed to SQLite (WAL) before it
is handed to the network, and deleted when the broker acknowledges it.

Rows are replayed oldest first (ids from AUTOINCREMENT are never reused, so a cursor
over ids stays valid). The file is opened in EXCLUSIVE locking mode: one station process
per outbox file; a second one fails with a clear error instead of double-publishing.

Thread safety: every method takes one internal lock; the sink's caller thread (put),
and its dispatcher thread (pending/ack) share one instance.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from eiad.errors import PublishError
from edge.sinks.mqtt_config import OutboxSettings

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    properties TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    created_unix_s REAL NOT NULL,
    size_bytes INTEGER NOT NULL
)
"""


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
    row_id: int
    message: OutgoingMessage
    created_unix_s: float


@dataclass(frozen=True)
class OutboxStats:
    depth_rows: int
    depth_bytes: int
    stored: int
    acked: int
    dropped_by_reason: dict[str, int]
    full_alarm: bool
    backlog_at_open: int


class Outbox:
    """SQLite outbox with row/byte/age bounds and a counted full policy (see OutboxSettings)."""

    def __init__(self, settings: OutboxSettings, *, clock=time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._dropped: Counter[str] = Counter()
        self._stored = 0
        self._acked = 0
        self._full_alarm = False
        self._next_expire_check = 0.0
        self._conn = self._open(Path(settings.path), settings.synchronous)
        rows, size, last_id = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0), COALESCE(MAX(id), 0) FROM messages"
        ).fetchone()
        self._rows, self._bytes = int(rows), int(size)
        self.backlog_at_open = self._rows
        self.last_id_at_open = int(last_id)
        if self._rows:
            log.info("outbox %s holds %d unsent messages (%d bytes): they will be replayed",
                     settings.path, self._rows, self._bytes)

    @staticmethod
    def _open(path: Path, synchronous: str) -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=0.5)
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute(_SCHEMA)
            conn.execute("CREATE INDEX IF NOT EXISTS messages_kind ON messages(kind, id)")
            conn.execute("CREATE INDEX IF NOT EXISTS messages_created ON messages(created_unix_s)")
        except sqlite3.OperationalError as exc:
            raise PublishError(
                f"cannot open the outbox {path}: {exc}. Is another station process using it? "
                "Each station needs its own outbox.path on a writable local disk"
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise PublishError(
                f"the outbox {path} is not a readable SQLite file ({exc}); move it aside "
                "to keep its data for inspection and restart"
            ) from exc
        if mode.lower() != "wal":
            raise PublishError(f"the outbox {path} could not switch to WAL mode (got {mode!r}); use a local disk")
        return conn

    def put(self, message: OutgoingMessage) -> int | None:
        """Commit one message; returns its row id, or None when refused (counted)."""
        ids = self.put_many([message])
        return ids[0]

    def put_many(self, messages: list[OutgoingMessage]) -> list[int | None]:
        """Commit messages in one transaction (in order); None for each refused one."""
        with self._lock:
            now = self._clock()
            self._expire_locked(now)
            ids: list[int | None] = []
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for message in messages:
                    ids.append(self._insert_locked(message, now))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._reload_totals_locked()
                raise
            return ids

    def _insert_locked(self, message: OutgoingMessage, now: float) -> int | None:
        size = len(message.payload) + len(message.topic)
        s = self._settings
        if size > s.max_bytes:
            self._dropped["too_large"] += 1
            log.error("outbox: %s message of %d bytes exceeds outbox.max_bytes=%d, dropped",
                      message.kind, size, s.max_bytes)
            return None
        if s.policy == "refuse_new":
            if self._rows + 1 > s.max_rows or self._bytes + size > s.max_bytes:
                self._dropped["refused_full"] += 1
                if not self._full_alarm:
                    log.error("outbox full (%d rows, %d bytes): refusing new messages", self._rows, self._bytes)
                self._full_alarm = True
                return None
        else:
            self._make_room_locked(size)
        cur = self._conn.execute(
            "INSERT INTO messages(kind, topic, payload, qos, retain, properties, dedup_key,"
            " created_unix_s, size_bytes) VALUES (?,?,?,?,?,?,?,?,?)",
            (message.kind, message.topic, message.payload, message.qos, int(message.retain),
             json.dumps(message.properties), message.dedup_key, now, size),
        )
        self._rows += 1
        self._bytes += size
        self._stored += 1
        return int(cur.lastrowid)

    def _make_room_locked(self, size: int) -> None:
        s = self._settings
        if self._rows + 1 <= s.max_rows and self._bytes + size <= s.max_bytes:
            return
        if not self._full_alarm:
            log.warning("outbox full (%d rows, %d bytes): applying %s", self._rows, self._bytes, s.policy)
        self._full_alarm = True
        if s.policy == "drop_oldest_masks_first":
            self._drop_oldest_locked(size, "full_drop_mask", "WHERE kind = 'mask'")
        self._drop_oldest_locked(size, "full_drop_oldest", "")

    def _drop_oldest_locked(self, size: int, reason: str, where: str) -> None:
        s = self._settings
        while self._rows + 1 > s.max_rows or self._bytes + size > s.max_bytes:
            rows = self._conn.execute(
                f"SELECT id, size_bytes FROM messages {where} ORDER BY id LIMIT 64"
            ).fetchall()
            if not rows:
                return
            victims = []
            for row_id, row_size in rows:
                if self._rows + 1 <= s.max_rows and self._bytes + size <= s.max_bytes:
                    break
                victims.append(row_id)
                self._rows -= 1
                self._bytes -= row_size
            self._delete_ids_locked(victims)
            self._dropped[reason] += len(victims)

    def _expire_locked(self, now: float, force: bool = False) -> None:
        if self._settings.max_age_s <= 0 or not self._rows:
            return
        if not force and now < self._next_expire_check:
            return  # at most one check a second keeps put() cheap
        self._next_expire_check = now + 1.0
        cutoff = now - self._settings.max_age_s
        # Ids grow with time: only look further when the oldest row is too old.
        oldest = self._conn.execute("SELECT created_unix_s FROM messages ORDER BY id LIMIT 1").fetchone()
        if oldest is None or oldest[0] >= cutoff:
            return
        n, size = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM messages WHERE created_unix_s < ?", (cutoff,)
        ).fetchone()
        if n:
            self._conn.execute("DELETE FROM messages WHERE created_unix_s < ?", (cutoff,))
            self._rows -= int(n)
            self._bytes -= int(size)
            self._dropped["expired"] += int(n)
            log.warning("outbox: %d messages older than %.0f s expired unsent", n, self._settings.max_age_s)

    def expire(self) -> None:
        """Drop rows older than max_age_s now (the sink calls this periodically)."""
        with self._lock:
            self._expire_locked(self._clock(), force=True)

    def pending(self, after_id: int, limit: int) -> list[StoredMessage]:
        """Up to `limit` unacknowledged rows with id > after_id, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, kind, topic, payload, qos, retain, properties, dedup_key, created_unix_s"
                " FROM messages WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        return [
            StoredMessage(r[0], OutgoingMessage(r[1], r[2], bytes(r[3]), r[7], r[4], bool(r[5]), json.loads(r[6])), r[8])
            for r in rows
        ]

    def ack(self, row_ids: list[int]) -> int:
        """Delete acknowledged rows (one transaction); returns how many were still there."""
        if not row_ids:
            return 0
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            found = self._delete_ids_locked(row_ids, count_sizes=True)
            self._conn.execute("COMMIT")
            self._acked += found
            if self._full_alarm and self._rows < self._settings.max_rows:
                self._full_alarm = False
            return found

    def _delete_ids_locked(self, row_ids: list[int], count_sizes: bool = False) -> int:
        found = 0
        for start in range(0, len(row_ids), 500):
            chunk = row_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            if count_sizes:
                n, size = self._conn.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM messages WHERE id IN ({marks})", chunk
                ).fetchone()
                self._rows -= int(n)
                self._bytes -= int(size)
                found += int(n)
            self._conn.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk)
        return found

    def discard(self, row_ids: list[int], reason: str) -> int:
        """Delete rows that can never be delivered (counted under `reason`)."""
        if not row_ids:
            return 0
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            found = self._delete_ids_locked(row_ids, count_sizes=True)
            self._conn.execute("COMMIT")
            self._dropped[reason] += found
            return found

    def _reload_totals_locked(self) -> None:
        rows, size = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM messages").fetchone()
        self._rows, self._bytes = int(rows), int(size)

    def stats(self) -> OutboxStats:
        with self._lock:
            return OutboxStats(self._rows, self._bytes, self._stored, self._acked,
                               dict(self._dropped), self._full_alarm, self.backlog_at_open)

    def journal_mode(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0])

    def close(self) -> None:
        """Checkpoint and close; idempotent. Unacknowledged rows stay for the next start."""
        with self._lock:
            if self._conn is None:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]
