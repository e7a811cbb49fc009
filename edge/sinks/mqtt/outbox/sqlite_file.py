"""The outbox's SQLite file: opening it (one station process per file), quarantining a
corrupt one, classifying a full disk, and checkpointing its WAL off the camera loop.

Why a lock file and not SQLite's EXCLUSIVE locking mode: EXCLUSIVE keeps the WAL index
in the writer's heap, so no second connection can open the file and every WAL
checkpoint (fsync of the WAL, copy into the main file: up to ~8 ms on a busy disk) runs
inside the camera loop's commit. With an advisory `flock` on `<path>.lock` a second
station still fails with a clear error, and `Checkpointer` runs PASSIVE checkpoints on
its own connection in its own thread while the writer keeps committing.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import sqlite3
import threading
from pathlib import Path

from eiad.errors import PublishError

log = logging.getLogger(__name__)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, topic TEXT NOT NULL,
        payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,
        properties TEXT NOT NULL, dedup_key TEXT NOT NULL, created_unix_s REAL NOT NULL,
        size_bytes INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS messages_kind ON messages(kind, id)",
    "CREATE INDEX IF NOT EXISTS messages_created ON messages(created_unix_s)",
    # Station facts that must be durable together with the messages (last_sequence).
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
_CORRUPT_CODES = {getattr(sqlite3, "SQLITE_CORRUPT", 11), getattr(sqlite3, "SQLITE_NOTADB", 26)}
_SQLITE_FULL = getattr(sqlite3, "SQLITE_FULL", 13)
# A write refused for lack of space shows as SQLITE_FULL (ENOSPC), or as SQLITE_IOERR_WRITE
# when the kernel refuses the whole write (EDQUOT quota, EFBIG file size limit): same policy.
_SQLITE_IOERR_WRITE = getattr(sqlite3, "SQLITE_IOERR_WRITE", 778)
_TOTALS = (
    "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0), COALESCE(MAX(id), 0),"
    " (SELECT COALESCE(MAX(value), 0) FROM meta WHERE key = 'last_sequence') FROM messages"
)


def is_disk_full(error: sqlite3.OperationalError) -> bool:
    """True when a write failed for lack of space (disk full, quota, file size limit)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return "disk is full" in str(error)
    return (code & 0xFF) == _SQLITE_FULL or code == _SQLITE_IOERR_WRITE


def open_outbox(path: Path, synchronous: str) -> tuple[sqlite3.Connection, tuple, Path | None]:
    """The writer connection, the totals (rows, bytes, last id, last sequence) and, when
    the file was corrupt, where it was moved (a fresh one is opened instead, once).
    Any other failure is a PublishError naming the file."""
    quarantined_to = None
    for attempt in (1, 2):
        conn = None
        try:
            conn = connect(path, synchronous)
            return conn, conn.execute(_TOTALS).fetchone(), quarantined_to
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            if attempt == 1 and is_corruption(exc):
                quarantined_to = quarantine(path, exc)
                continue
            raise PublishError(
                f"cannot open the outbox {path}: {exc}. Each station needs its own outbox.path on a writable local disk"
            ) from exc
    raise AssertionError("unreachable")


def is_corruption(error: sqlite3.DatabaseError) -> bool:
    """True when SQLite says the file is damaged or not a database (not: locked, busy, I/O)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _CORRUPT_CODES
    return not isinstance(error, sqlite3.OperationalError)


def take_lock(path: Path) -> int:
    """Hold an exclusive advisory lock on `<path>.lock` for the process's life; raise a clear
    error when another station process holds it. Returns the fd (closed by `release_lock`)."""
    lock_path = Path(f"{path}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise PublishError(
            f"cannot open the outbox {path}: another station process is using it ({lock_path} is locked). "
            "Each station needs its own outbox.path on a writable local disk"
        ) from None
    return fd


def release_lock(fd: int) -> None:
    if fd >= 0:
        os.close(fd)  # closing the fd drops the flock


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """The writer connection: WAL, no automatic checkpoints (the Checkpointer does them),
    schema created. Raises sqlite3 errors as they come (the caller classifies them)."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=0.5)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise PublishError(f"the outbox {path} could not switch to WAL mode (got {mode!r}); use a local disk")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints off the camera loop
        for statement in SCHEMA:
            conn.execute(statement)
    except BaseException:
        conn.close()
        raise
    return conn


def quarantine(path: Path, error: Exception) -> Path:
    """Rename a corrupt outbox (and its -wal/-shm) to `<path>.corrupt-<UTC stamp>`; returns the
    new main file's path. The data stays there for inspection; the station starts fresh."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = Path(f"{path}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{target}{suffix}"))
    log.error(
        "outbox %s is corrupt (%s): moved it to %s (keep it for inspection; its unsent messages are "
        "NOT replayed) and started a fresh outbox at %s",
        path,
        error,
        target,
        path,
    )
    return target


class Checkpointer:
    """Copies the WAL back into the main file every `interval_s` with PASSIVE checkpoints on
    its own connection, in its own daemon thread: never waits for the writer, never makes
    the writer wait. `close()` stops the thread; the final TRUNCATE checkpoint is the
    outbox's own (at close). Thread safety: start/close from the owner only."""

    def __init__(self, path: Path, interval_s: float = 0.5) -> None:
        self._path = path
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.checkpoints = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="outbox-checkpoint", daemon=True)

    def start(self) -> Checkpointer:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False, timeout=0.0)
        except sqlite3.Error as exc:
            log.warning(
                "outbox checkpointer cannot open %s (%s); the WAL is checkpointed at close only", self._path, exc
            )
            return
        try:
            while not self._stop.wait(self._interval_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy or a full disk: try again next time
                    self.errors += 1
                    log.debug("outbox checkpoint skipped: %s", exc)
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
