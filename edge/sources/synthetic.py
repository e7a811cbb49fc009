"""The synthetic line camera: a video of the line plus a per-frame ground-truth sidecar.

The sidecar is JSON Lines, one object per frame. A record's frame index is read from
its `frame`, `frame_index` or `index` key when present, else from its line number; the
whole record goes into `Frame.truth` (e.g. {"frame": 3, "label": "NG", "defect":
"scratch", "box_xyxy": [...]}) so demos and tests can score verdicts against it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from edge.sources.base import Capture
from edge.sources.opencv_source import OpenCvSource
from eiad.errors import SourceError

log = logging.getLogger(__name__)

SIDECAR_NAME = "ground_truth.jsonl"
_INDEX_KEYS = ("frame", "frame_index", "index")


def read_truth(path: Path) -> dict[int, dict]:
    """Frame index -> ground-truth record; SourceError naming the line of a bad record."""
    truth: dict[int, dict] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise SourceError(
                f"{path}:{number + 1}: not valid JSON ({error}); fix or regenerate the sidecar"
            ) from error
        if not isinstance(record, dict):
            raise SourceError(f"{path}:{number + 1}: expected a JSON object per line")
        index = next((record[k] for k in _INDEX_KEYS if k in record), len(truth))
        truth[int(index)] = record
    return truth


class SyntheticLineSource:
    def __init__(self, source_id: str, video: Path, truth: Path | None = None, loop: bool = False) -> None:
        self.source_id = source_id
        self._video = Path(video)
        self._truth_path = Path(truth) if truth else self._video.parent / SIDECAR_NAME
        self._loop = loop
        self._reader = OpenCvSource(source_id, str(video), kind="video", loop=False)
        self._truth: dict[int, dict] = {}
        self._index = 0
        self._closed = False

    def open(self) -> None:
        if not self._truth_path.is_file():
            raise SourceError(
                f"source {self.source_id}: ground-truth sidecar {self._truth_path} not found; set sources[].truth"
            )
        self._truth = read_truth(self._truth_path)
        self._reader.open()
        self._index = 0
        self._closed = False

    def read(self) -> Capture | None:
        capture = self._reader.read()
        if capture is None and self._loop and not self._closed:  # closed meanwhile: do not reopen
            self._reader.close()
            self._reader.open()
            self._index = 0
            capture = self._reader.read()
        if capture is None:
            return None
        truth = self._truth.get(self._index)
        if truth is None:
            log.debug("source %s: no ground truth for frame %d", self.source_id, self._index)
        self._index += 1
        return Capture(image=capture.image, truth=truth)

    def close(self) -> None:
        self._closed = True
        self._reader.close()
