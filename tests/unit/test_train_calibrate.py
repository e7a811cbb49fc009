"""Threshold calibration on hand-made score sets."""

import numpy as np
import pytest

from train.localization.calibrate import best_f1_threshold, calibrate, class_confidence_cutoff, target_frr_threshold


def test_best_f1_picks_the_hand_computed_threshold():
    # F1 at thresholds .9 .7 .6 .5 .1 = .5 .8 .667 .857 .75
    threshold, f1 = best_f1_threshold([0, 0, 1, 1, 1], [0.1, 0.6, 0.5, 0.7, 0.9])
    assert threshold == pytest.approx(0.5)
    assert f1 == pytest.approx(6 / 7)


def test_target_frr_rejects_at_most_the_target_share_of_ok_images():
    ok = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    t10 = target_frr_threshold(ok, 0.1)
    assert np.mean(ok >= t10) == pytest.approx(0.1) and t10 > 0.9
    t0 = target_frr_threshold(ok, 0.0)
    assert np.mean(ok >= t0) == 0.0 and t0 == pytest.approx(0.95)


def test_calibrate_combines_image_and_pixel_rules():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.3, 0.6, 0.8])
    masks = np.zeros((4, 2, 2))
    masks[2, 0, 0] = masks[3, 1, 1] = 1
    maps = masks * 0.7 + 0.1
    cal = calibrate(
        labels, scores, masks, maps, image_rule="target_frr", target_false_reject_rate=0.0, min_defect_area_px=3
    )
    assert 0.3 < cal.image_score < 0.31  # just above the highest OK score
    assert cal.pixel == pytest.approx(0.8)  # the defect pixels' value separates perfectly
    assert cal.min_defect_area_px == 3 and "of 2 good parts rejected" in cal.calibration
    best = calibrate(labels, scores, masks, maps, image_rule="best_f1")
    assert best.image_score == pytest.approx(0.6)


def test_the_default_rule_is_the_lines_false_reject_rate():
    labels = np.array([0] * 100 + [1] * 5)
    scores = np.r_[np.linspace(0.0, 0.5, 100), [0.3, 0.6, 0.7, 0.8, 0.9]]
    cal = calibrate(labels, scores, np.zeros((105, 1, 1)), np.zeros((105, 1, 1)))
    # 1 % of 100 good parts may be rejected: exactly the highest one
    assert np.sum(scores[:100] >= cal.image_score) == 1 and "at most 1.00% of 100 good parts" in cal.calibration


def test_class_cutoff_is_the_lowest_confidence_that_keeps_the_target_precision():
    # confidences .95 .9 .8 .7 .6, right right wrong right wrong: precision 1, 1, .67, .75, .6
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    truth = np.array([0, 0, 0, 0, 0])
    cutoff, how = class_confidence_cutoff(truth, probs, 0.75)
    assert cutoff == pytest.approx(0.7) and "publishes 4 of 5" in how
    assert class_confidence_cutoff(truth, probs, 1.0)[0] == pytest.approx(0.9)
    # good images do not count; no defect at all: nothing to calibrate, nothing published
    assert class_confidence_cutoff(np.array([-1, -1]), probs[:2], 0.9)[0] == 1.0
    # even the most confident prediction is wrong: nothing published
    assert class_confidence_cutoff(np.array([1]), probs[:1], 0.9)[0] == 1.0


def test_calibrate_without_defect_pixels_keeps_good_parts_masks_empty():
    # given good parts only, whose maps peak at 0.1 .. 0.55
    labels = np.zeros(10)
    maps = np.zeros((10, 2, 2))
    maps[:, 0, 0] = np.linspace(0.1, 0.55, 10)
    cal = calibrate(labels, np.linspace(0, 0.4, 10), np.zeros((10, 2, 2)), maps, target_false_reject_rate=0.0)
    # then no good part would get a single mask pixel
    assert 0.55 < cal.pixel < 0.5501 and "no defect pixel" in cal.calibration


def test_calibrate_rejects_unknown_rule():
    with pytest.raises(ValueError, match="best_f1"):
        calibrate([0, 1], [0.1, 0.9], np.zeros((2, 1, 1)), np.zeros((2, 1, 1)), image_rule="magic")
