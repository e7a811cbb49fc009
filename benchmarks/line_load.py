"""What a line benchmark streams: the load (cameras, rate, duration, budget), the frames it
replays and their ground truth, so `bench line` and `bench sweep` judge verdicts alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eiad.errors import ConfigError


@dataclass(frozen=True)
class LineLoad:
    fps_per_camera: float = 30.0
    cameras: int = 4
    duration_s: float = 20.0
    budget_ms: float = 15.0
    policy: str = "block"  # "block" (triggered line camera) or "latest" (free-running stream)
    queue_capacity: int = 4


def load_truth(config, video: Path | None, count: int) -> list[dict | None] | None:
    """Ground truth of the first `count` replayed frames: the synthetic source's sidecar (its
    `truth`, else ground_truth.jsonl beside the video), or one beside --video; None without one."""
    from edge.sources.synthetic import SIDECAR_NAME, read_truth

    path = Path(video).parent / SIDECAR_NAME if video is not None else None
    if video is None:
        for source in config.sources:
            if source.kind == "synthetic":
                path = config.path(source.truth) if source.truth else config.path(source.path).parent / SIDECAR_NAME
                break
            if source.kind == "video":
                path = config.path(source.path).parent / SIDECAR_NAME
                break
    if path is None or not path.is_file():
        return None
    truth = read_truth(path)
    return [truth.get(i) for i in range(count)]


def load_frames(config, manifest, video: Path | None, limit: int = 512, seed: int = 0) -> tuple[list[np.ndarray], str]:
    """Frames to replay: --video, else the config's first video/synthetic source, else synthetic frames.
    `limit` keeps memory bounded; the demo's 300-part stream fits whole, so accuracy is on all of it."""
    import cv2

    path = video
    if path is None:
        for source in config.sources:
            if source.kind in ("video", "synthetic"):
                path = config.path(source.path)
                break
    if path is not None:
        capture = cv2.VideoCapture(str(path))
        frames = []
        while len(frames) < limit:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(image)
        capture.release()
        if not frames:
            raise ConfigError(f"{path}: no frame could be read (missing file or unsupported codec)")
        return frames, f"{len(frames)} frames of {path}, replayed"
    h, w = manifest.input.height, manifest.input.width
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(16):
        image = np.clip(rng.normal(128, 6, (h, w, 3)), 0, 255).astype(np.uint8)
        if i % 4 == 3:  # every 4th part carries a bright square "defect"
            image[h // 4 : h // 4 + h // 8, w // 4 : w // 4 + w // 8] = 255
        frames.append(image)
    return frames, f"16 synthetic {w}x{h} frames (1 in 4 with a bright square), replayed"
