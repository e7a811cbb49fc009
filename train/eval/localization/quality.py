"""The quality report of a localization model on one split, at fixed (calibrated) thresholds.

Everything a line engineer reads, from the test split's predictions and thresholds
fitted elsewhere (the calibration split):
- verdicts at the image threshold: accuracy, miss rate (defective parts passed),
  overkill rate (good parts rejected), with the confusion counts;
- threshold-free: image AUROC, pixel AUROC, AUPRO (overall and per defect type), image
  AUROC per defect type;
- masks at the pixel threshold: pooled IoU and F1, mean IoU over defective images;
- classes: accuracy of the arg-max on defective images, per-class precision and recall,
  and what the confidence cut-off does (share published, accuracy of the published ones).

Pure numpy on `Predictions`; thread-safe.
"""

from __future__ import annotations

import numpy as np

from train.eval.metrics import aupro, auroc, class_accuracy, mask_scores


def _ratio(a: float, b: float) -> float | None:
    return round(float(a) / float(b), 4) if b else None


def verdict_scores(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Accuracy, miss and overkill of `scores >= threshold` against labels (1 = NG)."""
    labels = np.asarray(labels).astype(bool)
    ng = np.asarray(scores) >= threshold
    tp, fn = int(np.sum(labels & ng)), int(np.sum(labels & ~ng))
    fp, tn = int(np.sum(~labels & ng)), int(np.sum(~labels & ~ng))
    return {
        "accuracy": _ratio(tp + tn, labels.size),
        "miss_rate": _ratio(fn, tp + fn),
        "overkill_rate": _ratio(fp, fp + tn),
        "confusion": {"OK": {"OK": tn, "NG": fp}, "NG": {"OK": fn, "NG": tp}},
    }


def per_class_precision_recall(true_index: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict[str, dict]:
    """For each class: precision and recall of the arg-max over defective images (true_index >= 0)."""
    true_index = np.asarray(true_index)
    known = true_index >= 0
    out: dict[str, dict] = {}
    if not known.any() or not class_names:
        return out
    truth, predicted = true_index[known], np.asarray(probs)[known].argmax(axis=1)
    for i, name in enumerate(class_names):
        tp = int(np.sum((predicted == i) & (truth == i)))
        out[name] = {
            "precision": _ratio(tp, int(np.sum(predicted == i))),
            "recall": _ratio(tp, int(np.sum(truth == i))),
            "support": int(np.sum(truth == i)),
        }
    return out


def published_classes(true_index: np.ndarray, probs: np.ndarray, cutoff: float) -> dict:
    """What the edge publishes at the confidence cut-off: share of defects given a class, and their accuracy."""
    true_index = np.asarray(true_index)
    known = true_index >= 0
    if not known.any():
        return {"cutoff": cutoff, "published_share": None, "published_accuracy": None}
    probs = np.asarray(probs)[known]
    shown = probs.max(axis=1) >= cutoff
    right = probs.argmax(axis=1) == true_index[known]
    return {
        "cutoff": cutoff,
        "published_share": _ratio(int(shown.sum()), int(shown.size)),
        "published_accuracy": _ratio(int((right & shown).sum()), int(shown.sum())),
    }


def aupro_by_defect(
    masks: np.ndarray, maps: np.ndarray, class_index: np.ndarray, class_names: list[str], max_fpr: float = 0.3
) -> dict[str, float]:
    """AUPRO per defect type: that type's defective images plus every good image (whose
    pixels, with the type's own defect-free pixels, make the false-positive rate)."""
    class_index = np.asarray(class_index)
    good = class_index < 0
    out = {}
    for i, name in enumerate(class_names):
        rows = (class_index == i) | good
        if np.any(class_index == i) and np.asarray(masks)[class_index == i].any():
            out[name] = round(aupro(np.asarray(masks)[rows], np.asarray(maps)[rows], max_fpr), 4)
    return out


def image_auroc_by_defect(
    labels: np.ndarray, scores: np.ndarray, class_index: np.ndarray, defect_types: list[str]
) -> dict[str, float]:
    """Image AUROC per defect type: that type's defective images against every good image."""
    class_index, labels, scores = np.asarray(class_index), np.asarray(labels), np.asarray(scores)
    good = class_index < 0
    out = {}
    for i, name in enumerate(defect_types):
        rows = (class_index == i) | good
        if np.any(class_index == i) and good.any():
            out[name] = round(auroc(labels[rows], scores[rows]), 4)
    return out


def mean_image_iou(masks: np.ndarray, maps: np.ndarray, labels: np.ndarray, threshold: float) -> float | None:
    """Mean over defective images of the IoU of `map >= threshold` with the truth (what the demo scores)."""
    values = []
    for mask, prob, label in zip(masks, maps, labels):
        if label:
            truth, pred = mask.astype(bool), prob >= threshold
            union = np.logical_or(truth, pred).sum()
            values.append(float(np.logical_and(truth, pred).sum() / union) if union else 1.0)
    return round(float(np.mean(values)), 4) if values else None


def quality_report(
    pred, thresholds: dict, class_names: list[str], split: str, defect_types: list[str] | None = None
) -> dict:
    """Every quality figure of `pred` (train.eval.localization.predict.Predictions) at `thresholds`
    (image_score, pixel, class_confidence), labelled with the split it was computed on.

    `class_names`: the model's classes (none for a normal-only model); `defect_types`: the
    split's (what `pred.class_index` counts in; default: the model's), for the figures per type."""
    types = list(class_names) if defect_types is None else list(defect_types)
    masks = np.asarray(pred.masks).astype(bool)
    has_region = bool(masks.any()) and not bool(masks.all())
    pixel = mask_scores(masks, pred.maps, thresholds["pixel"])
    return {
        "split": split,
        "images": int(pred.labels.size),
        "defective_images": int(np.sum(pred.labels)),
        "thresholds_from": thresholds.get("calibration", ""),
        "verdicts": verdict_scores(pred.labels, pred.image_scores, thresholds["image_score"]),
        "image_auroc": auroc(pred.labels, pred.image_scores),
        "pixel_auroc": auroc(masks, pred.maps) if has_region else float("nan"),
        "aupro": aupro(masks, pred.maps) if has_region else float("nan"),
        "aupro_by_defect": aupro_by_defect(masks, pred.maps, pred.class_index, types) if has_region else {},
        "image_auroc_by_defect": image_auroc_by_defect(pred.labels, pred.image_scores, pred.class_index, types),
        "mask_iou": pixel["iou"],
        "mask_f1": pixel["f1"],
        "mean_iou_defective": mean_image_iou(masks, pred.maps, pred.labels, thresholds["pixel"]),
        "class_accuracy": class_accuracy(pred.class_index, pred.class_probs) if class_names else float("nan"),
        "per_class": per_class_precision_recall(pred.class_index, pred.class_probs, class_names),
        "class_publishing": published_classes(
            pred.class_index, pred.class_probs, float(thresholds.get("class_confidence", 0.0))
        ),
    }


def headline(report: dict) -> dict[str, float]:
    """The single numbers a summary line shows (floats only)."""
    v = report["verdicts"]
    keys = ("image_auroc", "pixel_auroc", "aupro", "mask_iou", "mean_iou_defective", "class_accuracy")
    out = {k: float(report[k]) for k in keys if report.get(k) is not None}
    out.update({k: float(v[k]) for k in ("accuracy", "miss_rate", "overkill_rate") if v.get(k) is not None})
    return out


def format_quality(report: dict) -> str:
    """The report as the terminal shows it."""
    v = report["verdicts"]
    pct = lambda x: "n/a" if x is None or x != x else f"{100 * x:.1f} %"  # noqa: E731
    num = lambda x: "n/a" if x is None or x != x else f"{x:.3f}"  # noqa: E731
    lines = [
        f"{report['split']} split: {report['images']} images ({report['defective_images']} defective); "
        f"thresholds from the calibration split ({report['thresholds_from']})",
        f"  verdicts   accuracy {pct(v['accuracy'])}  miss {pct(v['miss_rate'])}  overkill {pct(v['overkill_rate'])}",
        f"  ranking    image AUROC {num(report['image_auroc'])}  pixel AUROC {num(report['pixel_auroc'])}  "
        f"AUPRO {num(report['aupro'])}",
        f"  masks      IoU {num(report['mask_iou'])}  F1 {num(report['mask_f1'])}  "
        f"mean IoU per defective image {num(report['mean_iou_defective'])}",
    ]
    if report["aupro_by_defect"]:
        lines.append("  AUPRO per defect  " + "  ".join(f"{k} {num(x)}" for k, x in report["aupro_by_defect"].items()))
    if report.get("image_auroc_by_defect"):
        by_type = report["image_auroc_by_defect"].items()
        lines.append("  image AUROC per defect  " + "  ".join(f"{k} {num(x)}" for k, x in by_type))
    if report["per_class"]:
        pub = report["class_publishing"]
        lines.append(
            f"  classes    accuracy {num(report['class_accuracy'])}; published at confidence >= "
            f"{pub['cutoff']:.3f}: {pct(pub['published_share'])} of defects, right {pct(pub['published_accuracy'])}"
        )
        lines += [
            f"    {name:<18} precision {pct(x['precision']):>8}  recall {pct(x['recall']):>8}  ({x['support']})"
            for name, x in report["per_class"].items()
        ]
    return "\n".join(lines)
