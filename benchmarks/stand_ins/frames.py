"""Small real media for edge tests: FFV1 videos with ground-truth sidecars, image folders."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from benchmarks.stand_ins.artifact import frame_with_patch, grey_frame


def line_frames(
    count: int, every_ng: int = 3, height: int = 64, width: int = 64
) -> tuple[list[np.ndarray], list[dict]]:
    """Frames of a synthetic line for the tiny model: every `every_ng`-th has a white patch."""
    images, truths = [], []
    for i in range(count):
        if i % every_ng == 0:
            box = (4 + i % 20, 8, 14 + i % 20, 18)
            images.append(frame_with_patch(box, height=height, width=width))
            truths.append({"frame": i, "label": "NG", "defect": "bright_spot", "box_xyxy": list(box)})
        else:
            images.append(grey_frame(height, width))
            truths.append({"frame": i, "label": "OK"})
    return images, truths


def write_ffv1(path: Path, images: list[np.ndarray], fps: float = 25.0) -> Path:
    """A lossless FFV1 .mkv (OpenCV 5 can write it here; H.264 it cannot)."""
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write FFV1 here")
    for image in images:
        writer.write(image)
    writer.release()
    return path


def write_synthetic_line(folder: Path, count: int = 12, every_ng: int = 3) -> tuple[Path, list[dict]]:
    """`line.mkv` + `ground_truth.jsonl` in `folder`; returns the video path and the truths."""
    folder.mkdir(parents=True, exist_ok=True)
    images, truths = line_frames(count, every_ng)
    video = write_ffv1(folder / "line.mkv", images)
    (folder / "ground_truth.jsonl").write_text("".join(json.dumps(t) + "\n" for t in truths))
    return video, truths
