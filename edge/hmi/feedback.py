"""Operators' judgements as training data: each one copies the part's image (and for a
defect the mask the station published) into a review tree in the DDQA raw layout, and
appends a line to the audit log.

    <review_dir>/<line>/<camera>/NG/<class>/image/<id>.png   confirmed, re-classed or missed
    <review_dir>/<line>/<camera>/NG/<class>/mask/<id>.png    confirmed or re-classed (the station's mask)
    <review_dir>/<line>/<camera>/OK/image/<id>.png           a false alarm: the part was good
    <review_dir>/audit.jsonl                                 who judged what, when

A missed defect has no mask yet: `eiad data ddqa` skips it (reason `mask_missing`) until
one is drawn into `mask/` under the same name. A second judgement of the same part
replaces the first one's copies; the audit log keeps both.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path

from edge.hmi.history import History

ACTIONS = ("confirmed", "false_alarm", "missed_defect", "reclass")
# A class becomes a folder name: letters, digits, '_' and '-' only.
CLASS_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class FeedbackError(ValueError):
    """A judgement that cannot apply to this part; the message says why (shown to the operator)."""


class Review:
    def __init__(self, review_dir: Path, line: str, history: History) -> None:
        self.dir = Path(review_dir)
        self._line, self._history = line, history
        self._lock = threading.Lock()  # one judgement at a time: copies and the audit line stay paired

    @property
    def audit_log(self) -> Path:
        return self.dir / "audit.jsonl"

    def judge(self, inspection_id: str, action: str, user: str, defect_class: str | None = None) -> dict:
        """Apply one judgement; returns the review record (also stored on the history row)."""
        if action not in ACTIONS:
            raise FeedbackError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
        with self._lock:
            row = self._history.get(inspection_id)
            if row is None:
                raise FeedbackError(f"inspection {inspection_id} is no longer in the history")
            image = self._history.file(row["image"])
            if image is None:
                raise FeedbackError(
                    f"inspection {inspection_id} has no stored image to learn from (an OK part's picture is kept "
                    "for the last hmi.ok_pictures_kept parts only, and with hmi.save: ng not at all)"
                )
            target_class = self._class_for(row, action, defect_class)
            base = self.dir / self._line / row["source"]
            copies: list[Path] = []
            if action == "false_alarm":
                copies.append(_copy(image, base / "OK" / "image" / f"{inspection_id}.png"))
            else:
                folder = base / "NG" / target_class
                copies.append(_copy(image, folder / "image" / f"{inspection_id}.png"))
                mask = self._history.file(row["mask"])
                if action != "missed_defect" and mask is not None:
                    copies.append(_copy(mask, folder / "mask" / f"{inspection_id}.png"))
            earlier = row.get("review") or {}
            for old in earlier.get("files", []):
                if Path(old) not in copies:
                    Path(old).unlink(missing_ok=True)
            record = {
                "time_unix_s": round(time.time(), 3),
                "user": user,
                "inspection_id": inspection_id,
                "action": action,
                "defect_class": target_class,
                "verdict": row["verdict"],
                "published_class": row["defect_class"],
                "files": [str(p) for p in copies],
            }
            self.dir.mkdir(parents=True, exist_ok=True)
            with self.audit_log.open("a", encoding="utf-8") as log_file:
                log_file.write(json.dumps(record) + "\n")
            self._history.set_review(inspection_id, record)
            return record

    @staticmethod
    def _class_for(row: dict, action: str, defect_class: str | None) -> str | None:
        verdict, published = row["verdict"], row["defect_class"]
        if action in ("confirmed", "false_alarm", "reclass") and verdict != "NG":
            raise FeedbackError(f"'{action}' judges a rejected part; this one was {verdict}")
        if action == "missed_defect" and verdict != "OK":
            raise FeedbackError(f"'missed_defect' judges a passed part; this one was {verdict}")
        if action == "false_alarm":
            return None
        chosen = defect_class or (published if action == "confirmed" else None)
        if not chosen or chosen == "unknown":
            raise FeedbackError("choose the defect class: the model was not sure of it")
        if not CLASS_PATTERN.match(chosen):
            raise FeedbackError(f"class {chosen!r}: use letters, digits, '_' or '-' (it becomes a folder name)")
        return chosen


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
