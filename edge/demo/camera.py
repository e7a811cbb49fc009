"""The synthetic line of `eiad edge demo` as a triggered camera, and its ground truth.

`find_line` locates the video + `ground_truth.jsonl` of `eiad data synth` (`read_frames`
reads some of its frames back); `DemoCamera` plays it as a paced, looped line camera;
`Shots` remembers which truth record each frame id got (shared by every reopened camera);
`truth_mask` turns a truth record into a bool mask.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.sources.base import Capture
from edge.sources.synthetic import SIDECAR_NAME, SyntheticLineSource, read_truth
from eiad.errors import DataError, SourceError

VIDEO_NAMES = ("line.avi", "line.mkv")


@dataclass(frozen=True)
class LineFiles:
    folder: Path  # holds the video, ground_truth.jsonl and masks/
    video: Path
    truth_path: Path
    truth: dict[int, dict]
    fps: float
    size_wh: tuple[int, int]


def find_line(line: Path) -> LineFiles:
    """The synthetic line's video + ground truth in `line` (or `line`/stream); DataError otherwise."""
    import cv2

    line = Path(line)
    for folder in (line / "stream", line):
        video = next((folder / n for n in VIDEO_NAMES if (folder / n).is_file()), None)
        if video is not None and (folder / SIDECAR_NAME).is_file():
            break
    else:
        raise DataError(
            f"no synthetic line at {line} (expected {line / 'stream' / 'line.avi'} and "
            f"{SIDECAR_NAME} beside it): generate one with 'eiad data synth --out {line}'"
        )
    truth = read_truth(folder / SIDECAR_NAME)
    capture = cv2.VideoCapture(str(video))
    try:
        ok, image = capture.read()
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()
    if not ok or image is None:
        raise DataError(
            f"OpenCV cannot read a frame from {video}: regenerate it with 'eiad data synth --out {line} --force'"
        )
    if not truth:
        raise DataError(
            f"{folder / SIDECAR_NAME} is empty: regenerate the line with 'eiad data synth --out {line} --force'"
        )
    return LineFiles(
        folder, video, folder / SIDECAR_NAME, truth, fps if fps > 0 else 10.0, (image.shape[1], image.shape[0])
    )


class Shots:
    """What the demo camera took, shared by every (re)opened DemoCamera: the ground truth of
    frame id k is `truth[k]` (frame ids are contiguous per source, across restarts)."""

    def __init__(self, total: int, fps: float) -> None:
        self.total = total
        self.period_s = 1.0 / fps if fps > 0 else 0.0
        self.truth: list[dict | None] = []
        self.start: float | None = None
        self.late = 0  # ticks the camera could not keep because the station's queue was full


class DemoCamera:
    """The synthetic line as a triggered camera: paced, looped, `shots.total` frames then ends.

    Ticks are absolute (start + k/fps): a late read does not shift later ticks; a read
    more than one period late (the queue blocked it) counts in `shots.late`.
    """

    def __init__(self, source_id: str, line: LineFiles, shots: Shots) -> None:
        self.source_id = source_id
        self._inner = SyntheticLineSource(source_id, line.video, line.truth_path, loop=True)
        self._video = line.video
        self._shots = shots

    def open(self) -> None:
        self._inner.open()
        if self._shots.start is None:
            self._shots.start = time.perf_counter()

    def read(self) -> Capture | None:
        shots = self._shots
        k = len(shots.truth)
        if k >= shots.total:
            return None
        if shots.period_s:
            tick, now = shots.start + k * shots.period_s, time.perf_counter()
            if tick > now:
                time.sleep(tick - now)
            elif now - tick > shots.period_s:
                shots.late += 1
        capture = self._inner.read()
        if capture is None:
            raise SourceError(f"the line video {self._video} gave no frame")
        shots.truth.append(capture.truth)
        return capture

    def close(self) -> None:
        self._inner.close()


def truth_of(shots: Shots, frame_id: int) -> dict | None:
    """The truth record the camera took for `frame_id`, None when it took no such frame."""
    return shots.truth[frame_id] if 0 <= frame_id < len(shots.truth) else None


def truth_mask(truth: dict | None, line: LineFiles) -> np.ndarray | None:
    """The ground-truth defect mask (bool, frame size) of a truth record, None for OK parts."""
    import cv2

    if not truth or truth.get("label") != "NG":
        return None
    if truth.get("mask"):
        mask = cv2.imread(str(line.folder / truth["mask"]), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise DataError(
                f"ground-truth mask {line.folder / truth['mask']} is missing or unreadable: regenerate the line"
            )
        return mask > 0
    box = truth.get("bbox_xyxy") or truth.get("box_xyxy")  # sidecars without masks: the box is the truth
    if not box:
        return None
    mask = np.zeros((line.size_wh[1], line.size_wh[0]), bool)
    x1, y1, x2, y2 = (int(v) for v in box)
    mask[y1:y2, x1:x2] = True
    return mask


def read_frames(video: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """The frames of the line video at the indexes in `wanted` (one sequential read)."""
    import cv2

    capture, found, index = cv2.VideoCapture(str(video)), {}, 0
    try:
        while index <= max(wanted, default=-1):
            ok, image = capture.read()
            if not ok:
                break
            if index in wanted:
                found[index] = image
            index += 1
    finally:
        capture.release()
    return found
