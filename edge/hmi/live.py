"""The page's sink: takes results and explanations from the station without ever waiting,
stores them (history, images) on its own thread and pushes updates to connected browsers.

    pipeline --handle()--> bounded queue --writer thread--> History (SQLite + images)
                                                       +--> latest per camera, NG strip
                                                       +--> Hub --> one bounded queue per browser

`handle` is a `put_nowait`: when the writer falls behind, the newest result is dropped
and counted, never the loop delayed. Every result is stored, but OK parts go to the
browsers at most `live_ok_hz` times a second per camera (the newest one of each interval;
nobody reads 30 good parts a second, and each update costs every browser's connection
CPU time beside the verdicts); NG parts and explanations go at once. A browser that does not read its updates loses its
oldest ones (counted): the memory each client can hold is `client_queue` updates.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque

import numpy as np

from edge.hmi.history import History, result_row
from edge.hmi.settings import HmiSettings
from edge.results import InspectionResult

log = logging.getLogger(__name__)


class Hub:
    """Browsers' update queues, on the web server's event loop."""

    def __init__(self, client_queue: int, max_clients: int) -> None:
        self._size, self._max = client_queue, max_clients
        self._clients: set[asyncio.Queue] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0  # updates a slow browser never got

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def clients(self) -> int:
        return len(self._clients)

    def join(self) -> asyncio.Queue | None:
        """A queue for a new browser (on the loop), or None when `max_clients` are streaming."""
        if len(self._clients) >= self._max:
            return None
        updates: asyncio.Queue = asyncio.Queue(maxsize=self._size)
        self._clients.add(updates)
        return updates

    def leave(self, updates: asyncio.Queue) -> None:
        self._clients.discard(updates)

    def publish(self, kind: str, data: dict) -> None:
        """From any thread: hand one update to the loop (never blocks)."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and self._clients:
            try:
                loop.call_soon_threadsafe(self._deliver, kind, data)
            except RuntimeError:  # the loop closed meanwhile: nobody to tell
                pass

    def _deliver(self, kind: str, data: dict) -> None:
        for updates in list(self._clients):
            if updates.full():
                updates.get_nowait()  # a slow browser loses its oldest update, not the newest
                self.dropped += 1
            updates.put_nowait((kind, data))


class LiveFeed:
    """A station sink (`handle`, `handle_explanation`, `close`, `stats`). Thread safety:
    `handle*` from any thread; `snapshot` and `stats` from any thread."""

    def __init__(self, settings: HmiSettings, history: History, hub: Hub) -> None:
        self._s, self.history, self.hub = settings, history, hub
        self._queue: queue.Queue = queue.Queue(maxsize=settings.queue_size)
        self._lock = threading.Lock()  # guards the fields below
        self._latest: dict[str, dict] = {}
        self._recent_ng: deque[dict] = deque(maxlen=settings.recent_ng)
        self._dropped = 0
        self._written = 0
        self._failed = 0
        self._closed = False
        self._ok_interval_s = 1.0 / settings.live_ok_hz
        self._last_push: dict[str, float] = {}  # camera -> when its last result went to the browsers
        self._held: dict[str, dict] = {}  # camera -> the newest OK row not pushed yet (writer thread only)
        self._worker = threading.Thread(target=self._run, name="hmi-writer", daemon=True)
        self._worker.start()

    # --- the station's side: never waits ----------------------------------------------------

    def handle(self, result: InspectionResult, image: np.ndarray | None = None) -> None:
        keep = image is not None and (self._s.save == "all" or result.verdict == "NG")
        self._offer(("result", result, image if keep else None))

    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        self._offer(("explanation", inspection_id, text, dict(meta)))

    def _offer(self, item: tuple) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                self._dropped += 1

    # --- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._ok_interval_s if self._held else None)
            except queue.Empty:
                self._push_held(time.monotonic())
                continue
            if item is None:
                self.history.write_kept_pictures()  # the recent OK parts stay judgeable after a restart
                self.history.close()  # this thread's connection
                return
            try:
                if item[0] == "result":
                    self._store(item[1], item[2])
                else:
                    self._explained(*item[1:])
            except Exception:  # a full disk or a bad frame must not end the page's writer
                with self._lock:
                    self._failed += 1
                log.exception("the operator page could not store an update")

    def _store(self, result: InspectionResult, image: np.ndarray | None) -> None:
        row = self.history.add(result_row(result), image, result.mask if result.verdict == "NG" else None)
        with self._lock:
            self._written += 1
            self._latest[row["source"]] = row
            if row["verdict"] == "NG":
                self._recent_ng.appendleft(row)
        now, source = time.monotonic(), row["source"]
        if row["verdict"] != "OK" or now - self._last_push.get(source, float("-inf")) >= self._ok_interval_s:
            self._held.pop(source, None)  # this newer row replaces a held one
            self._push(source, row, now)
        else:
            self._held[source] = row
        self._push_held(now)

    def _push(self, source: str, row: dict, now: float) -> None:
        self._last_push[source] = now
        self.hub.publish("result", row)

    def _push_held(self, now: float) -> None:
        """Held OK rows whose interval has passed (also when no newer result came)."""
        for source, row in list(self._held.items()):
            if now - self._last_push.get(source, float("-inf")) >= self._ok_interval_s:
                del self._held[source]
                self._push(source, row, now)

    def _explained(self, inspection_id: str, text: str, meta: dict) -> None:
        consistent = meta.get("consistent")
        disagreements = [d for d in str(meta.get("disagreements") or "").split(",") if d]
        self.history.explain(inspection_id, text, consistent, disagreements)
        update = {"explanation": text, "consistent": consistent, "disagreements": disagreements}
        with self._lock:
            for row in [*self._latest.values(), *self._recent_ng]:
                if row["inspection_id"] == inspection_id:
                    row.update(update)
        self.hub.publish("explanation", {"inspection_id": inspection_id, **update})

    # --- the page's side -------------------------------------------------------------------

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "latest": [dict(row) for _, row in sorted(self._latest.items())],
                "recent_ng": [dict(row) for row in self._recent_ng],
            }

    def stats(self) -> dict:
        with self._lock:
            return {
                "queued": self._queue.qsize(),
                "written": self._written,
                "dropped": self._dropped,
                "failed": self._failed,
                "clients": self.hub.clients,
                "client_updates_dropped": self.hub.dropped,
            }

    def close(self) -> None:
        """Store what is queued, then stop the writer; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._worker.join(timeout=10.0)
