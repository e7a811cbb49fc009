"""A durable, bounded outbox: every outgoing message is committed to SQLite (WAL) before it
is handed to the network, and deleted when the broker acknowledges it.

Rows are replayed oldest first (ids from AUTOINCREMENT are never reused, so a cursor
over ids stays valid). One station process per outbox file (an advisory lock on
`<path>.lock`; a second one fails with a clear error instead of double-publishing). The
WAL is checkpointed by a background thread (edge/sinks/mqtt/outbox/sqlite_file.py), not by put().

Failures with a counted, documented policy instead of an exception or a crash loop:
  - disk full (SQLITE_FULL): the batch is not stored, `full_alarm` is raised, each message
    is counted in dropped_by_reason["disk_full"], put_many returns None for each; storing
    resumes by itself when space comes back;
  - a corrupt file at open: it is renamed to `<path>.corrupt-<UTC stamp>` (with -wal/-shm)
    and a fresh outbox is opened (`corrupt_quarantined` in stats).
The last sequence number is kept in the `meta` table, written in the same transaction as
the verdict that carries it, so numbering resumes without a gap after any crash.

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
from pathlib import Path

from edge.sinks.mqtt.config import OutboxSettings
from edge.sinks.mqtt.outbox.sqlite_file import Checkpointer, is_disk_full, open_outbox, release_lock, take_lock
from edge.sinks.mqtt.outbox.values import OutboxStats, OutgoingMessage, StoredMessage

__all__ = ["Outbox", "OutboxStats", "OutgoingMessage", "StoredMessage"]

log = logging.getLogger(__name__)


class Outbox:
    """SQLite outbox with row/byte/age bounds and a counted full policy (see OutboxSettings)."""

    def __init__(self, settings: OutboxSettings, *, clock=time.time, checkpoint_interval_s: float = 0.5) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._dropped: Counter[str] = Counter()
        self._stored = 0
        self._acked = 0
        self._full_alarm = False
        self._disk_full = False
        self._next_expire_check = 0.0
        path = Path(settings.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = take_lock(path)
        try:
            self._conn, (rows, size, last_id, last_seq), self.quarantined_to = open_outbox(path, settings.synchronous)
        except BaseException:
            release_lock(self._lock_fd)
            raise
        self.corrupt_quarantined = int(self.quarantined_to is not None)
        self._rows, self._bytes = int(rows), int(size)
        self.backlog_at_open = self._rows
        self.last_id_at_open = int(last_id)
        # Row id of the newest message stored (read without the lock by the dispatcher: an
        # int, set after the insert, so a stale value only delays a publish to the next wake).
        self.newest_id = int(last_id)
        self.last_sequence = int(last_seq)
        self._checkpointer = Checkpointer(path, checkpoint_interval_s).start()
        if self._rows:
            log.info(
                "outbox %s holds %d unsent messages (%d bytes): they will be replayed",
                settings.path,
                self._rows,
                self._bytes,
            )

    def put(self, message: OutgoingMessage) -> int | None:
        """Commit one message; returns its row id, or None when refused (counted)."""
        ids = self.put_many([message])
        return ids[0]

    def put_many(self, messages: list[OutgoingMessage], sequence: int | None = None) -> list[int | None]:
        """Commit messages in one transaction (in order); None for each refused one.

        `sequence`: the station's sequence number these messages carry, stored in the same
        transaction (meta.last_sequence), so a restart resumes after the last stored one.
        Disk full: nothing is stored, every message counts as `disk_full`, all None."""
        with self._lock:
            now = self._clock()
            ids: list[int | None] = []
            counted = (self._stored, self._dropped.copy())  # undone if the transaction is
            try:
                self._expire_locked(now)
                self._conn.execute("BEGIN IMMEDIATE")
                for message in messages:
                    ids.append(self._insert_locked(message, now))
                if sequence is not None and sequence > self.last_sequence:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES ('last_sequence', ?)", (sequence,)
                    )
                self._conn.execute("COMMIT")
            except BaseException as exc:
                # On SQLITE_FULL (and some I/O errors) SQLite has already rolled back: a
                # second ROLLBACK would raise and hide the real error.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                self._reload_totals_locked()
                self._stored, self._dropped = counted
                if isinstance(exc, sqlite3.OperationalError) and is_disk_full(exc):
                    return self._disk_full_locked(len(messages), exc)
                raise
            if sequence is not None and sequence > self.last_sequence:
                self.last_sequence = sequence
            if self._disk_full:
                self._disk_full = False
                self._full_alarm = self._rows >= self._settings.max_rows
                log.warning("outbox %s: disk space is back, storing verdicts again", self._settings.path)
            return ids

    def _disk_full_locked(self, count: int, exc: sqlite3.Error) -> list[int | None]:
        self._dropped["disk_full"] += count
        self._full_alarm = True
        if not self._disk_full:
            path = Path(self._settings.path).resolve()
            log.error(
                "outbox disk full at %s (%s; or a quota / file size limit): new verdicts are published live only, not "
                "stored, and are lost "
                "if the broker is unreachable; free space on the file system holding %s (df -h %s); storing "
                "resumes by itself",
                path,
                exc,
                path.parent,
                path.parent,
            )
        self._disk_full = True
        return [None] * count

    def _insert_locked(self, message: OutgoingMessage, now: float) -> int | None:
        size = len(message.payload) + len(message.topic)
        s = self._settings
        if size > s.max_bytes:
            self._dropped["too_large"] += 1
            log.error(
                "outbox: %s message of %d bytes exceeds outbox.max_bytes=%d, dropped", message.kind, size, s.max_bytes
            )
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
            (
                message.kind,
                message.topic,
                message.payload,
                message.qos,
                int(message.retain),
                json.dumps(message.properties),
                message.dedup_key,
                now,
                size,
            ),
        )
        self._rows += 1
        self._bytes += size
        self._stored += 1
        self.newest_id = max(self.newest_id, int(cur.lastrowid))
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
            rows = self._conn.execute(f"SELECT id, size_bytes FROM messages {where} ORDER BY id LIMIT 64").fetchall()
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
                " FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [
            StoredMessage(
                r[0], OutgoingMessage(r[1], r[2], bytes(r[3]), r[7], r[4], bool(r[5]), json.loads(r[6])), r[8]
            )
            for r in rows
        ]

    def ack(self, row_ids: list[int]) -> int:
        """Delete acknowledged rows (one transaction); returns how many were still there."""
        if not row_ids:
            return 0
        with self._lock:
            found = self._delete_in_transaction_locked(row_ids)
            self._acked += found
            if self._full_alarm and self._rows < self._settings.max_rows:
                self._full_alarm = False
            return found

    def _delete_in_transaction_locked(self, row_ids: list[int]) -> int:
        """Delete rows in one transaction; on failure (a full disk can refuse even a delete)
        the counters are reloaded from the table and the error goes to the caller."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            found = self._delete_ids_locked(row_ids, count_sizes=True)
            self._conn.execute("COMMIT")
            return found
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self._reload_totals_locked()
            raise

    def _delete_ids_locked(self, row_ids: list[int], count_sizes: bool = False) -> int:
        found = 0
        for start in range(0, len(row_ids), 500):
            chunk = row_ids[start : start + 500]
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
            found = self._delete_in_transaction_locked(row_ids)
            self._dropped[reason] += found
            return found

    @property
    def disk_full(self) -> bool:
        """True after a write failed for lack of space, until one succeeds again."""
        return self._disk_full

    def _reload_totals_locked(self) -> None:
        rows, size = self._conn.execute("SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM messages").fetchone()
        self._rows, self._bytes = int(rows), int(size)

    def stats(self) -> OutboxStats:
        with self._lock:
            return OutboxStats(
                self._rows,
                self._bytes,
                self._stored,
                self._acked,
                dict(self._dropped),
                self._full_alarm,
                self.backlog_at_open,
                self._disk_full,
                self.corrupt_quarantined,
                self.last_sequence,
            )

    def journal_mode(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0])

    def close(self) -> None:
        """Checkpoint and close; idempotent. Unacknowledged rows stay for the next start."""
        self._checkpointer.close()
        with self._lock:
            if self._conn is None:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # e.g. disk full: the WAL keeps the data, the next start replays it
                log.warning("outbox %s: final checkpoint failed (%s); the WAL keeps the data", self._settings.path, exc)
            finally:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]
                release_lock(self._lock_fd)
                self._lock_fd = -1
