"""From one frame's model outputs to a verdict: pure, no camera, no broker.

Rules, in order:

1. Every output must be finite and of the manifest's shape; otherwise the frame is
   REJECTED with the reason (a broken engine must never yield a silent OK).
2. The predicted class is the arg-max of `class_probs`. It is published only when its
   probability reaches the calibrated class-confidence cut-off (manifest
   `thresholds.class_confidence`, or the station's override); below, the class is
   `"unknown"` (UNKNOWN_CLASS), `class_confidence` still says how sure the model was.
   Only a published class's row in the per-class rule table applies: it may override the
   image threshold, the minimum defect area, or mark the class `accept: true` (a cosmetic
   defect that passes). An unsure class never lets a part pass as cosmetic.
3. Pixels with anomaly >= the pixel threshold form the mask; connected regions (8-way)
   smaller than the minimum defect area are removed from the mask.
4. NG when image_score >= the image threshold and at least one region is left (with a
   minimum area of 0, the score alone decides); otherwise OK. The score gates, the area
   confirms: a speck below the minimum area is not a reject.

Thresholds: station overrides > per-class rule > manifest (calibrated at export).
Regions and the mask are at the frame's original size (the map is resized back when the
frame was resized to the model input).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge.frames import Frame
from edge.results import InspectionResult, Region
from eiad.manifest import ANOMALY_MAP, CLASS_PROBS, IMAGE_SCORE, VISION_FEATURES, Manifest

# The defect class of an NG part whose class the model is not sure enough of.
UNKNOWN_CLASS = "unknown"


class ClassRule(BaseModel):
    """How one defect class is judged; unset fields fall back to the station/manifest value."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    image_score: float | None = Field(default=None, ge=0.0, le=1.0, description="image threshold for this class")
    min_defect_area_px: int | None = Field(default=None, ge=0, description="minimum region area, pixels")
    accept: bool = Field(default=False, description="true: this class never rejects a part (cosmetic)")


class ThresholdOverrides(BaseModel):
    """Per-station overrides of the manifest's calibrated thresholds (unset = manifest's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    image_score: float | None = Field(default=None, ge=0.0, le=1.0)
    pixel: float | None = Field(default=None, ge=0.0, le=1.0)
    min_defect_area_px: int | None = Field(default=None, ge=0)
    class_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="publish the class at or above this confidence, else 'unknown'"
    )
    classes: dict[str, ClassRule] = Field(default_factory=dict, description="per-class rule table, keyed by class name")


@dataclass(frozen=True)
class Decision:
    verdict: str
    score: float
    defect_class: str | None
    class_confidence: float
    regions: tuple[Region, ...]
    mask: np.ndarray | None
    reason: str = ""


def rejected(reason: str, score: float = 0.0) -> Decision:
    """A frame that could not be inspected; score 0.0 (JSON has no NaN), the reason says why."""
    return Decision("REJECTED", score, None, 0.0, (), None, reason)


def decide_outputs(
    outputs: dict[str, np.ndarray],
    manifest: Manifest,
    overrides: ThresholdOverrides,
    frame_hw: tuple[int, int] | None = None,
) -> Decision:
    """Judge one frame's outputs (batch axis already removed). `frame_hw` is the original size."""
    problem = _check_outputs(outputs, manifest)
    if problem:
        return rejected(problem)
    score = float(outputs[IMAGE_SCORE].reshape(()))
    probs = outputs[CLASS_PROBS].reshape(-1)
    best = int(np.argmax(probs))
    confidence = float(probs[best])
    cutoff = _first(overrides.class_confidence, manifest.thresholds.class_confidence)
    sure = bool(manifest.class_names) and confidence >= cutoff
    defect_class = manifest.class_names[best] if sure else UNKNOWN_CLASS
    rule = overrides.classes.get(defect_class, ClassRule()) if sure else ClassRule()
    image_threshold = _first(overrides.image_score, rule.image_score, manifest.thresholds.image_score)
    pixel_threshold = _first(overrides.pixel, manifest.thresholds.pixel)
    min_area = _first(rule.min_defect_area_px, overrides.min_defect_area_px, manifest.thresholds.min_defect_area_px)
    anomaly = outputs[ANOMALY_MAP].reshape(manifest.input.height, manifest.input.width)
    if frame_hw is not None and frame_hw != anomaly.shape:
        anomaly = cv2.resize(anomaly, (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_LINEAR)
    mask, regions = regions_of(anomaly, pixel_threshold, min_area)
    is_ng = score >= image_threshold and (min_area == 0 or bool(regions)) and not rule.accept
    if not is_ng:
        return Decision("OK", score, None, 0.0, regions, mask)
    return Decision("NG", score, defect_class, confidence, regions, mask)


def regions_of(anomaly: np.ndarray, pixel_threshold: float, min_area_px: int) -> tuple[np.ndarray, tuple[Region, ...]]:
    """Threshold the map, label 8-connected regions, drop those under `min_area_px`.

    Returns the uint8 mask (255 = defect, only kept regions) and the regions sorted by
    descending max score.
    """
    binary = anomaly >= pixel_threshold
    rows = np.flatnonzero(binary.any(axis=1))
    if rows.size == 0:  # most parts are good: skip labelling
        return np.zeros(anomaly.shape, np.uint8), ()
    cols = np.flatnonzero(binary.any(axis=0))
    # Label only the box around the hot pixels: a few specks in a large map cost microseconds.
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    hot = np.ascontiguousarray(binary[y0:y1, x0:x1]).view(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hot, connectivity=8)
    mask = np.zeros(anomaly.shape, np.uint8)
    regions = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < min_area_px:
            continue
        inside = labels[y : y + h, x : x + w] == label
        mask[y0 + y : y0 + y + h, x0 + x : x0 + x + w][inside] = 255
        peak = float(anomaly[y0 + y : y0 + y + h, x0 + x : x0 + x + w][inside].max())
        regions.append(Region((x0 + x, y0 + y, x0 + x + w, y0 + y + h), area, peak))
    regions.sort(key=lambda r: -r.max_score)
    return mask, tuple(regions)


def decide(
    outputs: dict[str, np.ndarray],
    manifest: Manifest,
    overrides: ThresholdOverrides,
    frame: Frame,
    inspection_id: str,
    sequence: int,
) -> InspectionResult:
    """`decide_outputs` plus the frame's identity: the full result for the sinks."""
    frame_hw = frame.image.shape[:2] if frame.image is not None and frame.image.ndim >= 2 else None
    return to_result(
        decide_outputs(outputs, manifest, overrides, frame_hw),
        frame,
        manifest,
        inspection_id,
        sequence,
        outputs.get(VISION_FEATURES),
    )


def to_result(
    decision: Decision,
    frame: Frame,
    manifest: Manifest,
    inspection_id: str,
    sequence: int,
    features: np.ndarray | None = None,
) -> InspectionResult:
    return InspectionResult(
        inspection_id=inspection_id,
        sequence=sequence,
        source_id=frame.source_id,
        frame_id=frame.frame_id,
        verdict=decision.verdict,
        score=decision.score,
        defect_class=decision.defect_class,
        class_confidence=decision.class_confidence,
        regions=decision.regions,
        model_id=manifest.model_id,
        captured_unix_s=frame.captured_unix_s,
        stamps_ns=dict(frame.stamps_ns),
        mask=decision.mask,
        reason=decision.reason,
        features=features if decision.verdict != "REJECTED" else None,
    )


def _check_outputs(outputs: dict[str, np.ndarray], manifest: Manifest) -> str:
    expected = {
        ANOMALY_MAP: manifest.input.height * manifest.input.width,
        IMAGE_SCORE: 1,
        CLASS_PROBS: max(1, len(manifest.class_names)),  # a model trained on good parts only has one column
    }
    for name, size in expected.items():
        value = outputs.get(name)
        if value is None:
            return f"model output {name} is missing"
        if value.size != size:
            return f"model output {name} has {value.size} values, expected {size}"
        bad = int(np.count_nonzero(~np.isfinite(value)))
        if bad:
            return f"model output {name} has {bad} NaN/inf values of {value.size}"
    return ""


def _first(*values):
    return next(v for v in values if v is not None)
