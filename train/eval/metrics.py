"""Localization metrics in numpy: image/pixel AUROC, AUPRO, mask IoU/F1, class accuracy.

Definitions (docs/training.md "Metrics"):
- AUROC: probability that a random positive scores above a random negative (ties count
  half), i.e. the Mann-Whitney U statistic; equals the area under the ROC curve.
- AUPRO (MVTec AD, Bergmann et al.): each connected ground-truth region (8-connected) is
  one region; PRO(t) = mean over regions of the fraction of the region's pixels scoring
  >= t; FPR(t) over all defect-free pixels. The PRO-vs-FPR curve is integrated from FPR 0
  to `max_fpr` (0.3) by trapezoids, interpolating at `max_fpr`, and divided by `max_fpr`.
- IoU/F1 at a threshold: pooled over all pixels of all images.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.stats import rankdata


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks: ties count half
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _region_weights(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Per pixel 1/(region size * number of regions) inside defect regions, 0 outside."""
    weights = np.zeros(masks.shape, np.float64)
    n_regions = 0
    regions = []
    for i, mask in enumerate(masks):
        labelled, count = ndimage.label(mask, structure=np.ones((3, 3), int))
        for region in range(1, count + 1):
            regions.append((i, labelled == region))
        n_regions += count
    for i, region in regions:
        weights[i][region] = 1.0 / (region.sum() * n_regions)
    return weights, n_regions


def pro_curve(masks: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, pro) at every distinct score, descending threshold, starting at (0, 0)."""
    masks = np.asarray(masks).astype(bool).reshape(-1, *np.asarray(masks).shape[-2:])
    maps = np.asarray(maps, dtype=np.float64).reshape(masks.shape)
    weights, n_regions = _region_weights(masks)
    normal = ~masks
    n_normal = int(normal.sum())
    if n_regions == 0 or n_normal == 0:
        raise ValueError("AUPRO needs at least one defect region and one defect-free pixel")
    order = np.argsort(-maps.ravel(), kind="stable")
    scores = maps.ravel()[order]
    fpr = np.cumsum(normal.ravel()[order]) / n_normal
    pro = np.cumsum(weights.ravel()[order])
    # Thresholds at distinct scores only: pixels with equal scores switch together.
    last_of_run = np.r_[scores[1:] != scores[:-1], True]
    return np.r_[0.0, fpr[last_of_run]], np.r_[0.0, pro[last_of_run]]


def aupro(masks: np.ndarray, maps: np.ndarray, max_fpr: float = 0.3) -> float:
    """Normalised area under the PRO curve up to `max_fpr` (1.0 = perfect)."""
    fpr, pro = pro_curve(masks, maps)
    if fpr[-1] < max_fpr:  # the curve ends at FPR 1, so this only guards odd inputs
        fpr, pro = np.r_[fpr, max_fpr], np.r_[pro, pro[-1]]
    keep = fpr <= max_fpr
    x, y = fpr[keep], pro[keep]
    if x[-1] < max_fpr:
        nxt = int(np.argmax(fpr > max_fpr))
        y_end = pro[nxt - 1] + (pro[nxt] - pro[nxt - 1]) * (max_fpr - fpr[nxt - 1]) / (fpr[nxt] - fpr[nxt - 1])
        x, y = np.r_[x, max_fpr], np.r_[y, y_end]
    return float(np.trapezoid(y, x) / max_fpr)


def mask_scores(masks: np.ndarray, maps: np.ndarray, threshold: float) -> dict[str, float]:
    """Pooled pixel IoU, F1, precision and recall of `maps >= threshold` against `masks`."""
    truth = np.asarray(masks).astype(bool)
    pred = np.asarray(maps) >= threshold
    tp = float(np.sum(truth & pred))
    fp = float(np.sum(~truth & pred))
    fn = float(np.sum(truth & ~pred))
    return {
        "iou": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
    }


def class_accuracy(true_index: np.ndarray, probs: np.ndarray) -> float:
    """Accuracy of argmax over images with a known class (true_index >= 0); NaN if none."""
    true_index = np.asarray(true_index)
    known = true_index >= 0
    if not known.any():
        return float("nan")
    return float(np.mean(np.asarray(probs)[known].argmax(axis=1) == true_index[known]))
