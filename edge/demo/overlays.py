"""NG overlay pictures of `eiad edge demo`: the frame, the published mask tinted red, the
ground-truth outline in green, the verdict and the truth as text (`overlays/ng_<sequence>.png`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.demo.camera import LineFiles, Shots, read_frames, truth_mask, truth_of
from edge.demo.live_view import Received

if TYPE_CHECKING:  # demo.py imports this module: its types only for annotations
    from edge.demo.recorder import Recorder


def write_overlays(
    folder: Path, line: LineFiles, shots: Shots, recorder: Recorder, received: Received, limit: int
) -> list[str]:
    """PNGs of the first `limit` NG verdicts the PLC received: the frame, the published mask in
    red, the ground-truth outline in green, the verdict and the truth as text."""
    import cv2

    chosen = [
        (i, r)
        for i, r in sorted(recorder.results.items(), key=lambda kv: kv[1]["sequence"])
        if received.verdicts.get(i, {}).get("verdict") == "NG"
    ][: max(0, limit)]
    if not chosen:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {_video_index(truth_of(shots, r["frame_id"]), r["frame_id"], len(line.truth)) for _, r in chosen}
    images = read_frames(line.video, wanted)
    written = []
    for inspection_id, record in chosen:
        truth = truth_of(shots, record["frame_id"])
        image = images.get(_video_index(truth, record["frame_id"], len(line.truth)))
        if image is None:
            continue
        path = folder / f"ng_{record['sequence']:06d}.png"
        cv2.imwrite(
            str(path),
            overlay(
                image,
                received.masks.get(inspection_id),
                truth_mask(truth, line),
                received.verdicts[inspection_id],
                truth,
            ),
        )
        written.append(str(path))
    return written


def overlay(
    image: np.ndarray, mask: np.ndarray | None, truth: np.ndarray | None, payload: dict, record: dict | None
) -> np.ndarray:
    """One overlay picture (BGR), scaled up so that small frames stay readable."""
    import cv2

    h, w = image.shape[:2]
    scale = max(1, int(np.ceil(320 / max(h, w))))
    big = cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    if mask is not None:
        m = cv2.resize(mask, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST) > 0
        big[m] = (0.45 * big[m] + 0.55 * np.array([0, 0, 255])).astype(np.uint8)
    if truth is not None:
        t = cv2.resize(truth.astype(np.uint8) * 255, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(t, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(big, contours, -1, (0, 255, 0), 2)
    said = f"truth {record.get('label', '?')} {record.get('defect') or ''}" if record else "no ground truth"
    lines = [
        f"#{payload.get('sequence')} {payload.get('verdict')} score {float(payload.get('score', 0)):.3f} "
        f"{payload.get('defect_class') or ''}",
        f"{said}   red: published mask, green: truth",
    ]
    band = np.zeros((22 * len(lines) + 6, big.shape[1], 3), np.uint8)
    for k, text in enumerate(lines):
        cv2.putText(band, text, (4, 18 + 22 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([band, big])


def _video_index(truth: dict | None, frame_id: int, video_frames: int) -> int:
    for key in ("frame_index", "frame", "index"):
        if truth and key in truth:
            return int(truth[key])
    return frame_id % max(1, video_frames)
