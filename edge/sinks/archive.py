"""Local archive sink: NG images, masks and verdict JSON on disk, rotated by count and bytes.

`handle()` only enqueues (bounded queue, drops counted as `queue_full`); a worker thread
encodes and writes. Each item is `<dir>/<YYYYMMDD>/<sequence>_<inspection_id>.{json,png,mask.png}`.
Rotation deletes the oldest items (by file modification order at start, then by write
order) when `max_items` or `max_bytes` is exceeded.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge.results import InspectionResult
from edge.sinks.mqtt.sink import build_verdict

log = logging.getLogger(__name__)


class ArchiveSettings(BaseModel):
    """Section `archive:` of the station YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: Path = Path("archive")
    line: str = "line"
    station: str = "station"
    save: Literal["ng", "ng_and_rejected", "all"] = "ng"
    image_format: Literal["png", "jpg"] = "jpg"
    jpeg_quality: int = Field(default=90, ge=10, le=100)
    max_items: int = Field(default=10_000, ge=1)
    max_bytes: int = Field(default=2 * 1024**3, ge=1024)
    queue_size: int = Field(default=64, ge=1, description="Results waiting to be written; more are dropped")


class ArchiveSink:
    """Thread safety: `handle` from any thread; `close` once from the owner."""

    def __init__(self, settings: ArchiveSettings) -> None:
        self._s = settings
        self._dir = Path(settings.directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue = queue.Queue(maxsize=settings.queue_size)
        self._lock = threading.Lock()  # guards _counts
        self._counts: Counter[str] = Counter()
        self._items: deque[tuple[list[Path], int]] = deque()
        self._bytes = 0
        self._scan_existing()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="archive-writer", daemon=True)
        self._worker.start()

    def _wanted(self, result: InspectionResult) -> bool:
        return (
            self._s.save == "all"
            or result.verdict == "NG"
            or (self._s.save == "ng_and_rejected" and result.verdict == "REJECTED")
        )

    def handle(self, result: InspectionResult, image: np.ndarray | None = None) -> None:
        """Queue one result (and the frame's BGR image if the caller has it). Never blocks."""
        if not self._wanted(result):
            return
        try:
            self._queue.put_nowait((result, image))
        except queue.Full:
            self._count("dropped_queue_full")

    def stats(self) -> dict:
        with self._lock:
            counts = dict(self._counts)
            items, size = len(self._items), self._bytes
        return {"items": items, "bytes": size, "backlog": self._queue.qsize(), **counts}

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (within timeout_s) and stop the worker; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            log.warning("archive queue still full at close; the newest items are lost")
        self._worker.join(timeout_s)

    # ---- worker -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._write(*item)
                self._rotate()
            except Exception:
                log.exception("archive: cannot write %s", item[0].inspection_id)
                self._count("write_failed")

    def _write(self, result: InspectionResult, image: np.ndarray | None) -> None:
        day = time.strftime("%Y%m%d", time.gmtime(result.captured_unix_s))
        folder = self._dir / day
        folder.mkdir(exist_ok=True)
        stem = f"{result.sequence:09d}_{result.inspection_id}"
        paths: list[Path] = []
        verdict = build_verdict(
            result, self._s.station, self._s.line, time.time(), result.stamps_ns, result.mask is not None
        )
        meta = folder / f"{stem}.json"
        meta.write_text(json.dumps(verdict.model_dump(), indent=1))
        paths.append(meta)
        if result.mask is not None:
            paths.append(self._encode(folder / f"{stem}.mask.png", result.mask))
        if image is not None:
            paths.append(self._encode(folder / f"{stem}.{self._s.image_format}", image))
        size = sum(p.stat().st_size for p in paths)
        with self._lock:
            self._items.append((paths, size))
            self._bytes += size
            self._counts["written"] += 1

    def _encode(self, path: Path, array: np.ndarray) -> Path:
        params = [cv2.IMWRITE_JPEG_QUALITY, self._s.jpeg_quality] if path.suffix == ".jpg" else []
        ok, data = cv2.imencode(path.suffix, np.ascontiguousarray(array), params)
        if not ok:
            raise ValueError(f"cannot encode {path.name}")
        path.write_bytes(data.tobytes())
        return path

    def _rotate(self) -> None:
        while True:
            with self._lock:
                if len(self._items) <= self._s.max_items and self._bytes <= self._s.max_bytes:
                    return
                paths, size = self._items.popleft()
                self._bytes -= size
                self._counts["rotated"] += 1
            for p in paths:
                p.unlink(missing_ok=True)

    def _scan_existing(self) -> None:
        """Pick up items from earlier runs so rotation bounds the whole directory."""
        groups: dict[Path, list[Path]] = {}
        for p in self._dir.glob("*/*_*.*"):
            groups.setdefault(p.parent / p.name.split(".")[0], []).append(p)
        for stem in sorted(groups, key=lambda s: (s.parent.name, s.name)):
            paths = groups[stem]
            size = sum(p.stat().st_size for p in paths)
            self._items.append((paths, size))
            self._bytes += size

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1
