"""The camera stream of the line: one part per frame, like a triggered line camera.

Writes `stream/line.avi` (FFV1 lossless by default, so frames equal the ground truth
bit for bit; MJPG is lossy), `stream/masks/<frame>.png` for NG frames and
`stream/ground_truth.jsonl`, one JSON object per frame:
    {"frame_index", "time_s", "part", "label": "OK"|"NG", "defect": name|null,
     "bbox_xyxy": [x1, y1, x2, y2] | null, "defect_area_px", "mask": "masks/<frame>.png"|null}
bbox_xyxy is in pixel-edge coordinates: x2 and y2 are exclusive (width = x2 - x1).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from eiad.errors import DataError
from train.data.synth.catalog import defects_for
from train.data.synth.config import SynthConfig
from train.data.synth.parts import STREAM_DOMAIN, STREAM_PLAN_DOMAIN, render_pair, sample_rng
from train.data.synth.writer import STREAM_DIR, write_png

log = logging.getLogger(__name__)

VIDEO_NAME = "line.avi"
GROUND_TRUTH_NAME = "ground_truth.jsonl"
_FOURCC = {"ffv1": "FFV1", "mjpg": "MJPG"}


@dataclass(frozen=True)
class StreamSummary:
    """What was written for the stream (paths absolute)."""

    video: Path
    ground_truth: Path
    frames: int
    ng_frames: int
    codec: str
    fps: float


def plan_frames(config: SynthConfig) -> list[tuple[str, str | None]]:
    """(part, defect or None) per frame; exactly round(frames * ng_fraction) NG frames."""
    rng = np.random.default_rng([config.seed, STREAM_PLAN_DOMAIN])
    n = config.stream_frames
    ng = set(rng.choice(n, size=int(round(n * config.stream_ng_fraction)), replace=False).tolist()) if n else set()
    plan = []
    for index in range(n):
        part = config.parts[int(rng.integers(len(config.parts)))]
        choices = defects_for(part)
        defect = choices[int(rng.integers(len(choices)))] if index in ng else None
        plan.append((part, defect))
    return plan


def bbox_xyxy(mask: np.ndarray) -> list[int] | None:
    """Tight box around the mask's non-zero pixels, x2/y2 exclusive; None if empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def write_stream(config: SynthConfig, out_dir: Path, tick=lambda: None) -> StreamSummary:
    """Render and write every frame; `tick()` is called once per frame (progress)."""
    folder = out_dir / STREAM_DIR
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    size = config.image_size_px
    video = folder / VIDEO_NAME
    writer = cv2.VideoWriter(
        str(video), cv2.VideoWriter_fourcc(*_FOURCC[config.stream_codec]), config.stream_fps, (size, size)
    )
    if not writer.isOpened():
        raise DataError(
            f"OpenCV cannot write {config.stream_codec} video to {video}; "
            "try --stream-codec mjpg or check the OpenCV build (needs FFmpeg)"
        )
    ng_frames = 0
    try:
        with open(folder / GROUND_TRUTH_NAME, "w", encoding="utf-8") as sidecar:
            for index, (part, defect) in enumerate(plan_frames(config)):
                pair = render_pair(sample_rng(config.seed, STREAM_DOMAIN, part, defect, index), part, defect, size)
                writer.write(cv2.cvtColor(pair.image, cv2.COLOR_RGB2BGR))
                record = {
                    "frame_index": index,
                    "time_s": round(index / config.stream_fps, 6),
                    "part": part,
                    "label": "NG" if defect else "OK",
                    "defect": defect,
                    "bbox_xyxy": None,
                    "defect_area_px": 0,
                    "mask": None,
                }
                if defect is not None:
                    ng_frames += 1
                    mask_name = f"masks/{index:06d}.png"
                    write_png(folder / mask_name, pair.mask)
                    record.update(
                        bbox_xyxy=bbox_xyxy(pair.mask), mask=mask_name, defect_area_px=int(np.count_nonzero(pair.mask))
                    )
                sidecar.write(json.dumps(record) + "\n")
                tick()
    finally:
        writer.release()
    log.info("stream: %d frames (%d NG) -> %s", config.stream_frames, ng_frames, video)
    return StreamSummary(
        video, folder / GROUND_TRUTH_NAME, config.stream_frames, ng_frames, config.stream_codec, config.stream_fps
    )
