"""Verdict rules on hand-made output maps (no engine)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.frames import Frame
from edge.verdict import UNKNOWN_CLASS, ClassRule, ThresholdOverrides, decide, decide_outputs
from eiad.manifest import InputSpec, Manifest, TensorSpec, Thresholds

H, W = 32, 48


@pytest.fixture()
def manifest() -> Manifest:
    return Manifest(
        model_id="hand-made",
        backbone="none",
        preset="test",
        input=InputSpec(height=H, width=W),
        outputs=[
            TensorSpec(name=n, shape=s, dtype="float32")
            for n, s in (("anomaly_map", ["batch", 1, H, W]), ("image_score", ["batch"]), ("class_probs", ["batch", 3]))
        ],
        class_names=["scratch", "stain", "hole"],
        thresholds=Thresholds(image_score=0.5, pixel=0.6, min_defect_area_px=5),
        preprocessing="none",
    )


def outputs(score: float, boxes=(), probs=(0.7, 0.2, 0.1), value: float = 0.9) -> dict:
    anomaly = np.zeros((1, H, W), np.float32)
    for x1, y1, x2, y2 in boxes:
        anomaly[0, y1:y2, x1:x2] = value
    return {"anomaly_map": anomaly, "image_score": np.float32(score), "class_probs": np.array(probs, np.float32)}


def test_high_score_with_large_region_is_ng_with_exact_box(manifest):
    decision = decide_outputs(outputs(0.9, boxes=[(10, 5, 14, 9)]), manifest, ThresholdOverrides())
    assert decision.verdict == "NG"
    assert decision.defect_class == "scratch" and decision.class_confidence == pytest.approx(0.7)
    assert [(r.box_xyxy, r.area_px) for r in decision.regions] == [((10, 5, 14, 9), 16)]
    assert decision.regions[0].max_score == pytest.approx(0.9)
    assert decision.mask.shape == (H, W) and decision.mask.dtype == np.uint8
    assert int((decision.mask == 255).sum()) == 16


def test_low_score_is_ok_without_class(manifest):
    decision = decide_outputs(outputs(0.2, boxes=[(10, 5, 14, 9)]), manifest, ThresholdOverrides())
    assert decision.verdict == "OK" and decision.defect_class is None
    assert len(decision.regions) == 1  # regions are still reported for the operator


def test_region_below_min_area_is_removed_and_part_passes(manifest):
    decision = decide_outputs(
        outputs(0.9, boxes=[(0, 0, 2, 2), (20, 20, 30, 22)]), manifest, ThresholdOverrides(min_defect_area_px=21)
    )
    assert decision.verdict == "OK"
    # given min area 5 from the manifest instead, the 4-px speck is removed but the 20-px bar stays
    decision = decide_outputs(outputs(0.9, boxes=[(0, 0, 2, 2), (20, 20, 30, 22)]), manifest, ThresholdOverrides())
    assert decision.verdict == "NG"
    assert [r.area_px for r in decision.regions] == [20]
    assert decision.mask[0, 0] == 0 and decision.mask[20, 20] == 255


def test_station_override_beats_manifest_threshold(manifest):
    out = outputs(0.45, boxes=[(10, 5, 14, 9)])
    assert decide_outputs(out, manifest, ThresholdOverrides()).verdict == "OK"
    assert decide_outputs(out, manifest, ThresholdOverrides(image_score=0.4)).verdict == "NG"


def test_pixel_threshold_override_changes_the_mask(manifest):
    out = outputs(0.9, boxes=[(10, 5, 14, 9)], value=0.55)
    assert decide_outputs(out, manifest, ThresholdOverrides()).verdict == "OK"  # 0.55 < pixel 0.6: no region
    assert decide_outputs(out, manifest, ThresholdOverrides(pixel=0.5)).verdict == "NG"


def test_class_rule_table_accepts_cosmetic_class_and_tightens_another(manifest):
    rules = ThresholdOverrides(
        classes={"stain": ClassRule(accept=True), "hole": ClassRule(image_score=0.3, min_defect_area_px=1)}
    )
    stain = outputs(0.95, boxes=[(10, 5, 14, 9)], probs=(0.1, 0.8, 0.1))
    assert decide_outputs(stain, manifest, rules).verdict == "OK"
    hole = outputs(0.35, boxes=[(1, 1, 2, 3)], probs=(0.1, 0.1, 0.8))
    decision = decide_outputs(hole, manifest, rules)
    assert decision.verdict == "NG" and decision.defect_class == "hole" and decision.regions[0].area_px == 2


def test_a_class_below_the_calibrated_confidence_is_published_as_unknown(manifest):
    # given an artifact whose classes were calibrated to publish at confidence >= 0.6
    calibrated = manifest.model_copy(
        update={"thresholds": manifest.thresholds.model_copy(update={"class_confidence": 0.6})}
    )
    sure = decide_outputs(outputs(0.9, boxes=[(10, 5, 14, 9)], probs=(0.7, 0.2, 0.1)), calibrated, ThresholdOverrides())
    unsure = decide_outputs(
        outputs(0.9, boxes=[(10, 5, 14, 9)], probs=(0.5, 0.3, 0.2)), calibrated, ThresholdOverrides()
    )
    # then the sure part names its class; the unsure one is still NG, with class 'unknown' and its confidence
    assert (sure.verdict, sure.defect_class) == ("NG", "scratch")
    assert (unsure.verdict, unsure.defect_class) == ("NG", UNKNOWN_CLASS) and unsure.class_confidence == pytest.approx(
        0.5
    )
    # and a station may set its own cut-off
    assert (
        decide_outputs(
            outputs(0.9, boxes=[(10, 5, 14, 9)], probs=(0.5, 0.3, 0.2)),
            calibrated,
            ThresholdOverrides(class_confidence=0.4),
        ).defect_class
        == "scratch"
    )


def test_an_unsure_class_never_lets_a_part_pass_as_cosmetic(manifest):
    # given 'stain' accepted as cosmetic and a cut-off of 0.9
    calibrated = manifest.model_copy(
        update={"thresholds": manifest.thresholds.model_copy(update={"class_confidence": 0.9})}
    )
    rules = ThresholdOverrides(classes={"stain": ClassRule(accept=True)})
    # when the model thinks 'stain' but only at 0.8, then the part is rejected as unknown, not passed
    decision = decide_outputs(outputs(0.95, boxes=[(10, 5, 14, 9)], probs=(0.1, 0.8, 0.1)), calibrated, rules)
    assert (decision.verdict, decision.defect_class) == ("NG", UNKNOWN_CLASS)


def test_a_model_without_classes_says_unknown(manifest):
    # given a model trained on good parts only: one class column, no class names
    plain = manifest.model_copy(update={"class_names": []})
    decision = decide_outputs(outputs(0.9, boxes=[(10, 5, 14, 9)], probs=(1.0,)), plain, ThresholdOverrides())
    assert (decision.verdict, decision.defect_class) == ("NG", UNKNOWN_CLASS)


@pytest.mark.parametrize("name,bad", [("anomaly_map", np.nan), ("image_score", np.inf), ("class_probs", -np.inf)])
def test_non_finite_outputs_are_rejected_never_ok(manifest, name, bad):
    out = outputs(0.1)
    out[name] = np.array(out[name], np.float32)
    out[name].reshape(-1)[0] = bad
    decision = decide_outputs(out, manifest, ThresholdOverrides())
    assert decision.verdict == "REJECTED"
    assert name in decision.reason and "NaN/inf" in decision.reason
    assert decision.mask is None


def test_wrong_output_size_is_rejected(manifest):
    out = outputs(0.1)
    out["class_probs"] = np.array([1.0], np.float32)
    decision = decide_outputs(out, manifest, ThresholdOverrides())
    assert decision.verdict == "REJECTED" and "class_probs" in decision.reason


def test_decide_resizes_map_to_original_frame_and_keeps_identity(manifest):
    frame = Frame("cam1", 7, np.zeros((H * 2, W * 2, 3), np.uint8), captured_unix_s=1.5, stamps_ns={"captured": 1})
    result = decide(outputs(0.9, boxes=[(10, 5, 14, 9)]), manifest, ThresholdOverrides(), frame, "st-cam1-1-7", 3)
    assert result.mask.shape == (H * 2, W * 2)
    x1, y1, x2, y2 = result.regions[0].box_xyxy
    assert abs(x1 - 20) <= 1 and abs(y1 - 10) <= 1 and abs(x2 - 28) <= 1 and abs(y2 - 18) <= 1
    assert (result.inspection_id, result.sequence, result.frame_id, result.model_id) == (
        "st-cam1-1-7",
        3,
        7,
        "hand-made",
    )
