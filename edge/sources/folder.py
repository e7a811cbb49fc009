"""Images from a folder: read once in name order, or watched for files a line PC drops in.

Watch mode: a file is read only after its size and modification time have stayed the
same for `settle_ms` (a half-copied file is never decoded). Files seen are remembered
for the life of the process (across watchdog restarts); with `move_done_to` each read file is moved out, so a
restart does not inspect it again. An unreadable image becomes an empty frame, which the
pipeline rejects with a reason; the source goes on.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edge.sources.base import IDLE, Capture
from eiad.errors import SourceError

log = logging.getLogger(__name__)


class FolderSource:
    def __init__(
        self,
        source_id: str,
        folder: Path,
        patterns: list[str] | tuple[str, ...] = ("*.png", "*.jpg", "*.bmp"),
        watch: bool = False,
        settle_ms: float = 500.0,
        poll_interval_ms: float = 200.0,
        move_done_to: Path | None = None,
        seen: set[str] | None = None,
    ) -> None:
        self.source_id = source_id
        self._folder = Path(folder)
        self._patterns = tuple(patterns)
        self._watch = watch
        self._settle_s = settle_ms / 1000.0
        self._poll_s = poll_interval_ms / 1000.0
        self._move_to = Path(move_done_to) if move_done_to else None
        self._seen: set[str] = seen if seen is not None else set()  # shared across restarts
        self._pending: list[Path] = []
        self._sizes: dict[str, tuple[int, int, float]] = {}  # name -> (size, mtime_ns, first seen unchanged)
        self._closed = threading.Event()

    def open(self) -> None:
        if not self._folder.is_dir():
            raise SourceError(f"source {self.source_id}: folder {self._folder} not found; check sources[].path")
        if self._move_to:
            self._move_to.mkdir(parents=True, exist_ok=True)
        self._closed.clear()

    def read(self) -> Capture | None:
        while not self._closed.is_set():
            if not self._pending:
                self._pending = self._scan()
            if self._pending:
                return self._load(self._pending.pop(0))
            if not self._watch:
                return None
            self._closed.wait(self._poll_s)
            return IDLE  # a quiet folder is not a stalled camera
        return None

    def _scan(self) -> list[Path]:
        names = sorted({p for pattern in self._patterns for p in self._folder.glob(pattern) if p.is_file()})
        fresh = [p for p in names if p.name not in self._seen]
        if not self._watch:
            return fresh
        return [p for p in fresh if self._settled(p)]

    def _settled(self, path: Path) -> bool:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False
        now = time.monotonic()
        size, mtime, since = self._sizes.get(path.name, (-1, -1, now))
        if (stat.st_size, stat.st_mtime_ns) != (size, mtime):
            self._sizes[path.name] = (stat.st_size, stat.st_mtime_ns, now)
            return self._settle_s == 0
        return now - since >= self._settle_s

    def _load(self, path: Path) -> Capture:
        self._seen.add(path.name)
        self._sizes.pop(path.name, None)
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            log.warning("source %s: cannot decode %s", self.source_id, path)
            image = np.zeros((0, 0, 3), np.uint8)
        elif image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if self._move_to:
            shutil.move(str(path), str(self._move_to / path.name))
        return Capture(image=image, truth={"file": path.name})

    def close(self) -> None:
        self._closed.set()
