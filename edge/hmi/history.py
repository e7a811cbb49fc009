"""The page's history: an SQLite index of the last inspections with their images on disk.

It survives a restart of the station. One writer (the page's writer thread) inserts and
prunes; readers (the web server's threads) open their own connections. Files per part:
`images/<id>.png` (the frame), `<id>.mask.png` (255 = defect, NG only) and
`<id>.overlay.png` (the mask in translucent red, what the page lays over the frame).

OK parts' frames are not encoded as they pass: a lossless PNG costs milliseconds of CPU
per part, beside the verdicts, for pictures nobody looks at. The last `ok_pictures_kept`
OK frames wait in memory (raw; ~150 KB each at 224 x 224) and are written when a browser
asks for one, when an operator judges one (a missed defect) or when the page stops; an
older OK part's picture is gone (its row says so: `file()` returns None).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from edge.results import InspectionResult

# Inspection ids are "<station>-<source>-<ns>-<frame>" (ids from config plus digits); anything
# else asked of the page is refused before it reaches a path or a query.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")

# OpenCV's default PNG settings: with the OpenCV this project pins, an explicit
# IMWRITE_PNG_COMPRESSION (even 1) leaves its fast path and took about twice the CPU time
# for a 224 x 224 frame and five times for a mask (cv2.imencode, thread time).
_FAST_PNG: list[int] = []

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inspections (
    inspection_id TEXT PRIMARY KEY,
    sequence INTEGER, source TEXT, frame_id INTEGER, verdict TEXT, score REAL,
    defect_class TEXT, class_confidence REAL, regions TEXT, model_id TEXT,
    captured_unix_s REAL, latency_ms REAL, image TEXT, mask TEXT,
    explanation TEXT, consistent INTEGER, disagreements TEXT, review TEXT
);
CREATE INDEX IF NOT EXISTS by_verdict ON inspections(verdict);
CREATE INDEX IF NOT EXISTS by_source ON inspections(source);
"""
_COLUMNS = (
    "inspection_id, sequence, source, frame_id, verdict, score, defect_class, class_confidence, regions, "
    "model_id, captured_unix_s, latency_ms, image, mask, explanation, consistent, disagreements, review"
)


def result_row(result: InspectionResult) -> dict:
    """What the page shows of one result (JSON-ready)."""
    stamps = result.stamps_ns
    latency = (stamps["decided"] - stamps["captured"]) / 1e6 if {"decided", "captured"} <= stamps.keys() else None
    return {
        "inspection_id": result.inspection_id,
        "sequence": result.sequence,
        "source": result.source_id,
        "frame_id": result.frame_id,
        "verdict": result.verdict,
        "score": round(float(result.score), 4),
        "defect_class": result.defect_class,
        "class_confidence": round(float(result.class_confidence), 4),
        "regions": [{"box_xyxy": list(r.box_xyxy), "area_px": r.area_px} for r in result.regions],
        "model_id": result.model_id,
        "captured_unix_s": result.captured_unix_s,
        "latency_ms": None if latency is None else round(latency, 3),
        "reason": result.reason,
    }


class History:
    def __init__(self, data_dir: Path, max_items: int, ok_pictures_kept: int = 300) -> None:
        self.dir = Path(data_dir)
        self._ok_kept = ok_pictures_kept
        self._unwritten: OrderedDict[str, np.ndarray] = OrderedDict()  # file name -> OK frame, oldest first
        self._unwritten_lock = threading.Lock()  # the writer adds, the web server's threads write out
        self.images = self.dir / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "history.sqlite3"
        self._max = max_items
        self._local = threading.local()
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

        self._count = self._db().execute("SELECT COUNT(*) FROM inspections").fetchone()[0]

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections are not shared between threads)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=5.0)
            db.row_factory = sqlite3.Row
            # No fsync per inspection: a power cut may lose the last rows of the page's history
            # (never a verdict: those are in the MQTT outbox), and the writer stays cheap.
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    # --- the writer thread ---------------------------------------------------------------

    def add(self, row: dict, image: np.ndarray | None, mask: np.ndarray | None) -> dict:
        """Store one inspection (files first, then the row); returns the row as stored."""
        pid = row["inspection_id"]
        image_name = mask_name = None
        if image is not None and mask is None and self._ok_kept > 0:  # an OK part: written when wanted
            image_name = f"{pid}.png"
            with self._unwritten_lock:
                self._unwritten[image_name] = image
                while len(self._unwritten) > self._ok_kept:
                    self._unwritten.popitem(last=False)
        elif image is not None:
            image_name = f"{pid}.png"
            cv2.imwrite(str(self.images / image_name), image, _FAST_PNG)
            if mask is not None and mask.any():
                mask_name = f"{pid}.mask.png"
                cv2.imwrite(str(self.images / mask_name), mask, _FAST_PNG)
                overlay = np.zeros((*mask.shape, 4), np.uint8)
                overlay[mask > 0] = (40, 40, 255, 110)  # BGRA: translucent red where the defect is
                cv2.imwrite(str(self.images / f"{pid}.overlay.png"), overlay, _FAST_PNG)
        stored = {**row, "image": image_name, "mask": mask_name}
        with self._db() as db:
            db.execute(
                f"INSERT OR REPLACE INTO inspections ({_COLUMNS}) VALUES ({', '.join('?' * 18)})",
                (
                    pid,
                    row["sequence"],
                    row["source"],
                    row["frame_id"],
                    row["verdict"],
                    row["score"],
                    row["defect_class"],
                    row["class_confidence"],
                    json.dumps(row["regions"]),
                    row["model_id"],
                    row["captured_unix_s"],
                    row["latency_ms"],
                    image_name,
                    mask_name,
                    None,
                    None,
                    None,
                    None,
                ),
            )
        self._count += 1
        if self._count > self._max:
            self._prune(self._count - self._max)
        return stored

    def explain(self, inspection_id: str, text: str, consistent: bool | None, disagreements: list[str]) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE inspections SET explanation = ?, consistent = ?, disagreements = ? WHERE inspection_id = ?",
                (text, None if consistent is None else int(consistent), json.dumps(disagreements), inspection_id),
            )

    def _prune(self, n: int) -> None:
        db = self._db()
        old = db.execute("SELECT inspection_id FROM inspections ORDER BY rowid LIMIT ?", (n,)).fetchall()
        with db:
            db.executemany("DELETE FROM inspections WHERE inspection_id = ?", [(r[0],) for r in old])
        for (pid,) in old:
            with self._unwritten_lock:
                self._unwritten.pop(f"{pid}.png", None)
            for suffix in (".png", ".mask.png", ".overlay.png"):
                (self.images / f"{pid}{suffix}").unlink(missing_ok=True)
        self._count -= len(old)

    # --- any thread --------------------------------------------------------------------

    def get(self, inspection_id: str) -> dict | None:
        row = self._db().execute(f"SELECT {_COLUMNS} FROM inspections WHERE inspection_id = ?", (inspection_id,))
        found = row.fetchone()
        return _decoded(found) if found else None

    def query(
        self,
        verdict: str | None = None,
        defect_class: str | None = None,
        source: str | None = None,
        limit: int = 100,
        before_sequence: int | None = None,
    ) -> list[dict]:
        """The newest inspections first, filtered; at most `limit` (1..500)."""
        where, args = [], []
        for column, value in (("verdict", verdict), ("defect_class", defect_class), ("source", source)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if before_sequence is not None:
            where.append("sequence < ?")
            args.append(before_sequence)
        sql = f"SELECT {_COLUMNS} FROM inspections"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rowid DESC LIMIT ?"
        args.append(max(1, min(int(limit), 500)))
        return [_decoded(r) for r in self._db().execute(sql, args).fetchall()]

    def set_review(self, inspection_id: str, review: dict | None) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE inspections SET review = ? WHERE inspection_id = ?",
                (None if review is None else json.dumps(review), inspection_id),
            )

    def file(self, name: str | None) -> Path | None:
        """The path of a stored file named in a row (None when the row has none or it is gone)."""
        if not name:
            return None
        path = self.images / name
        with self._unwritten_lock:  # held while writing: a second asker waits for the file
            image = self._unwritten.pop(name, None)
            if image is not None:
                cv2.imwrite(str(path), image, _FAST_PNG)
        return path if path.is_file() else None

    def write_kept_pictures(self) -> int:
        """Write every OK picture still in memory (the page stops); returns how many."""
        with self._unwritten_lock:
            kept, self._unwritten = self._unwritten, OrderedDict()
        for name, image in kept.items():
            cv2.imwrite(str(self.images / name), image, _FAST_PNG)
        return len(kept)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _decoded(row: sqlite3.Row) -> dict:
    item = dict(row)
    for key in ("regions", "disagreements", "review"):
        item[key] = json.loads(item[key]) if item[key] else ([] if key != "review" else None)
    if item["consistent"] is not None:
        item["consistent"] = bool(item["consistent"])
    return item
