"""Threshold calibration on the calibration split: image score, pixel map, class confidence.

The calibration split is used for this and nothing else; every reported figure comes
from the test split (eiad/split.py says why there are three parts).

Image: `target_frr` (the default) picks the lowest threshold that rejects at most
`target_false_reject_rate` of the good parts, the overkill a line accepts, and the miss
rate that follows is reported on test beside it; `best_f1` picks the best F1 of NG vs OK.
Pixel: the best F1 over all pixels. Class confidence: the lowest cut-off at which the
classes published (confidence >= cut-off) are right at least `target_class_precision`
of the time; below it the edge publishes `defect_class: "unknown"`.
All are probabilities in 0..1 (the engine outputs sigmoid/softmax probabilities), stored
in the checkpoint's meta.json as the manifest's Thresholds fields; `eiad export` copies
them into the artifact.
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
    class_confidence: float
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
        raise ValueError("no OK images in the calibration split: cannot calibrate a false-reject rate")
    allowed = int(np.floor(target_false_reject_rate * ok.size))  # OK images we may reject
    # Rejecting exactly the `allowed` highest OK scores: threshold just above the next one.
    return float(np.nextafter(ok[ok.size - 1 - allowed], np.inf))


def class_confidence_cutoff(true_index: np.ndarray, probs: np.ndarray, target_precision: float) -> tuple[float, str]:
    """(cut-off, how) for publishing a defect class: the lowest confidence c such that the
    predictions with confidence >= c are right at least `target_precision` of the time.

    Only images with a known class count (true_index >= 0). With none, or when even the
    most confident prediction alone is wrong, the cut-off is 1.0: classes are published
    only at full certainty, in practice "unknown".
    """
    true_index = np.asarray(true_index)
    known = true_index >= 0
    if not known.any() or np.asarray(probs).ndim != 2:
        return 1.0, "class: no defect sample to calibrate on, published as unknown"
    probs = np.asarray(probs, dtype=np.float64)[known]
    confidence = probs.max(axis=1)
    right = probs.argmax(axis=1) == true_index[known]
    order = np.argsort(-confidence, kind="stable")
    c, r = confidence[order], right[order]
    precision = np.cumsum(r) / np.arange(1, r.size + 1)
    last = np.r_[c[1:] != c[:-1], True]  # every image with an equal confidence is published together
    ok = np.nonzero(last & (precision >= target_precision))[0]
    if ok.size == 0:
        return (
            1.0,
            f"class: no cut-off reaches precision {target_precision:.0%} on {r.size} defects, published as unknown",
        )
    deepest = int(ok[-1])  # the lowest cut-off that still meets the target
    return float(c[deepest]), (
        f"class: confidence >= {c[deepest]:.3f} publishes {deepest + 1} of {r.size} "
        f"calibration defects at precision {precision[deepest]:.0%}"
    )


def calibrate(
    labels,
    image_scores,
    masks,
    maps,
    *,
    class_index=None,
    class_probs=None,
    image_rule: str = "target_frr",
    target_false_reject_rate: float = 0.01,
    target_class_precision: float = 0.9,
    min_defect_area_px: int = 0,
) -> Calibration:
    """Thresholds from calibration-split image labels/scores, pixel masks/maps and class
    probabilities (all probabilities)."""
    labels = np.asarray(labels).astype(bool)
    image_scores = np.asarray(image_scores, dtype=np.float64)
    if image_rule == "target_frr":
        image_t = target_frr_threshold(image_scores[~labels], target_false_reject_rate)
        how = f"image: at most {target_false_reject_rate:.2%} of {int((~labels).sum())} good parts rejected"
    elif image_rule == "best_f1":
        image_t, f1 = best_f1_threshold(labels, image_scores)
        how = f"image: best F1 {f1:.3f}"
    else:
        raise ValueError(f"unknown image threshold rule {image_rule!r}: use 'target_frr' or 'best_f1'")
    if np.asarray(masks).any():
        pixel_t, pixel_f1 = best_f1_threshold(np.asarray(masks), np.asarray(maps))
        pixel_how = f"pixel: best F1 {pixel_f1:.3f}"
    else:  # no defect pixel to fit on (good parts only): good parts' masks stay empty at the target rate
        peaks = np.asarray(maps, dtype=np.float64).reshape(labels.size, -1).max(axis=1)[~labels]
        pixel_t = target_frr_threshold(peaks, target_false_reject_rate)
        pixel_how = f"pixel: no defect pixel, at most {target_false_reject_rate:.2%} of good parts with any mask pixel"
    if class_index is not None and class_probs is not None:
        class_t, class_how = class_confidence_cutoff(class_index, class_probs, target_class_precision)
    else:
        class_t, class_how = 0.0, "class: not calibrated"
    text = f"{how}; {pixel_how}; {class_how}; on {labels.size} calibration images"
    log.info("calibrated thresholds image=%.4f pixel=%.4f class=%.3f (%s)", image_t, pixel_t, class_t, text)
    return Calibration(
        float(np.clip(image_t, 0, 1)),
        float(np.clip(pixel_t, 0, 1)),
        int(min_defect_area_px),
        float(np.clip(class_t, 0, 1)),
        text,
    )
