"""Threshold calibration on the held-out split: image score and pixel map thresholds.

Image: either the threshold that rejects at most `target_false_reject_rate` of the OK
images (a line sets its tolerated overkill), or the one with the best F1 on NG vs OK.
Pixel: the best F1 over all pixels. Both are probabilities in 0..1 (the engine outputs
sigmoid probabilities), stored in the checkpoint's meta.json as the manifest's
Thresholds fields; `eiad export` copies them into the artifact.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    image_score: float
    pixel: float
    min_defect_area_px: int
    calibration: str

    def to_dict(self) -> dict:
        return asdict(self)


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of `scores >= threshold`; positives are labels == 1.

    The threshold is a score that occurs, so `>=` reproduces the F1 exactly. With no
    positive, returns (just above the max score, 0.0): nothing is flagged.
    """
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(labels.sum())
    if n_pos == 0:
        return float(np.nextafter(scores.max(), np.inf)) if scores.size else 0.5, 0.0
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[s[1:] != s[:-1], True]  # a threshold flags every pixel with an equal score
    f1 = 2 * tp[last] / (tp[last] + fp[last] + n_pos)
    best = int(np.argmax(f1))
    return float(s[last][best]), float(f1[best])


def target_frr_threshold(ok_scores: np.ndarray, target_false_reject_rate: float) -> float:
    """Lowest threshold (flag if score >= it) rejecting at most the target fraction of OK images."""
    ok = np.sort(np.asarray(ok_scores, dtype=np.float64).ravel())
    if ok.size == 0:
        raise ValueError("no OK images in the held-out split: cannot calibrate a false-reject rate")
    allowed = int(np.floor(target_false_reject_rate * ok.size))  # OK images we may reject
    # Rejecting exactly the `allowed` highest OK scores: threshold just above the next one.
    return float(np.nextafter(ok[ok.size - 1 - allowed], np.inf))


def calibrate(labels, image_scores, masks, maps, *, image_rule: str = "best_f1",
              target_false_reject_rate: float = 0.01, min_defect_area_px: int = 0) -> Calibration:
    """Thresholds from held-out image labels/scores and pixel masks/maps (probabilities)."""
    labels = np.asarray(labels).astype(bool)
    image_scores = np.asarray(image_scores, dtype=np.float64)
    if image_rule == "target_frr":
        image_t = target_frr_threshold(image_scores[~labels], target_false_reject_rate)
        how = f"image: at most {target_false_reject_rate:.2%} OK images rejected"
    elif image_rule == "best_f1":
        image_t, f1 = best_f1_threshold(labels, image_scores)
        how = f"image: best F1 {f1:.3f}"
    else:
        raise ValueError(f"unknown image threshold rule {image_rule!r}: use 'target_frr' or 'best_f1'")
    pixel_t, pixel_f1 = best_f1_threshold(np.asarray(masks), np.asarray(maps))
    text = f"{how}; pixel: best F1 {pixel_f1:.3f}; on {labels.size} held-out images"
    log.info("calibrated thresholds image=%.4f pixel=%.4f (%s)", image_t, pixel_t, text)
    return Calibration(float(np.clip(image_t, 0, 1)), float(np.clip(pixel_t, 0, 1)), int(min_defect_area_px), text)
