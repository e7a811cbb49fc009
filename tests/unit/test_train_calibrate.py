"""Threshold calibration on hand-made score sets."""

import numpy as np
import pytest

from train.calibrate import best_f1_threshold, calibrate, target_frr_threshold


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
    cal = calibrate(labels, scores, masks, maps, image_rule="target_frr", target_false_reject_rate=0.0, min_defect_area_px=3)
    assert 0.3 < cal.image_score < 0.31  # just above the highest OK score
    assert cal.pixel == pytest.approx(0.8)  # the defect pixels' value separates perfectly
    assert cal.min_defect_area_px == 3 and "OK images rejected" in cal.calibration
    best = calibrate(labels, scores, masks, maps, image_rule="best_f1")
    assert best.image_score == pytest.approx(0.6)


def test_calibrate_rejects_unknown_rule():
    with pytest.raises(ValueError, match="best_f1"):
        calibrate([0, 1], [0.1, 0.9], np.zeros((2, 1, 1)), np.zeros((2, 1, 1)), image_rule="magic")
