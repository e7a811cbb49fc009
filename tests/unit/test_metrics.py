"""Localization metrics against values computed by hand on tiny arrays."""

import numpy as np
import pytest

from train.eval.metrics import aupro, auroc, class_accuracy, mask_scores, pro_curve


def test_auroc_counts_pairs_and_ties_half():
    # given 2 negatives and 2 positives where one positive loses to one negative
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    # then 3 of the 4 positive/negative pairs are ordered correctly
    assert auroc(labels, scores) == pytest.approx(0.75)
    # and a tie counts half
    assert auroc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert auroc([0, 1, 1], [0.5, 0.5, 0.9]) == pytest.approx(0.75)


def test_auroc_is_nan_with_one_class():
    assert np.isnan(auroc([1, 1], [0.2, 0.3]))


def _two_region_case():
    # one row: region A = pixel 0 (size 1), region B = pixels 3-4 (size 2); normals 1, 2, 5
    masks = np.array([[[1, 0, 0, 1, 1, 0]]])
    maps = np.array([[[0.8, 0.7, 0.2, 0.9, 0.3, 0.1]]])
    return masks, maps


def test_pro_curve_matches_hand_computed_points():
    masks, maps = _two_region_case()
    fpr, pro = pro_curve(masks, maps)
    # thresholds .9 .8 .7 .3 .2 .1 -> PRO .25 .75 .75 1 1 1 ; FPR 0 0 1/3 1/3 2/3 1
    np.testing.assert_allclose(fpr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(pro, [0, 0.25, 0.75, 0.75, 1, 1, 1])


def test_aupro_integrates_to_the_fpr_limit_and_normalises():
    masks, maps = _two_region_case()
    # up to FPR 0.3 the curve sits at PRO 0.75: area 0.225 / 0.3
    assert aupro(masks, maps, 0.3) == pytest.approx(0.75)
    # up to 0.5: 0.75 * 1/3 + 1 * (0.5 - 1/3), divided by 0.5
    assert aupro(masks, maps, 0.5) == pytest.approx((0.25 + 1 / 6) / 0.5)


def test_aupro_regions_are_eight_connected_and_weighted_equally():
    # given a diagonal pair (one region under 8-connectivity) and a far single pixel
    masks = np.zeros((1, 4, 4), int)
    masks[0, 0, 0] = masks[0, 1, 1] = 1
    masks[0, 3, 3] = 1
    maps = np.zeros((1, 4, 4))
    maps[0, 3, 3] = 1.0  # only the single-pixel region is found
    # then PRO at the top threshold is 1/2 (two regions), not 1/3 (pixel share)
    fpr, pro = pro_curve(masks, maps)
    assert pro[1] == pytest.approx(0.5) and fpr[1] == 0


def test_perfect_map_scores_one():
    masks = np.zeros((2, 8, 8), int)
    masks[0, 2:5, 2:5] = 1
    maps = masks.astype(float) * 0.9 + 0.05
    assert aupro(masks, maps) == pytest.approx(1.0)
    assert auroc(masks, maps) == pytest.approx(1.0)


def test_mask_scores_pool_pixels():
    masks = np.array([[1, 1, 0, 0]])
    maps = np.array([[0.9, 0.2, 0.8, 0.1]])
    scores = mask_scores(masks, maps, 0.5)  # tp 1, fp 1, fn 1
    assert scores["iou"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(0.5)


def test_class_accuracy_ignores_ok_images():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    assert class_accuracy(np.array([0, 0, -1, 0]), probs) == pytest.approx(2 / 3)
    assert np.isnan(class_accuracy(np.array([-1]), probs[:1]))


def test_quality_report_without_defects_reports_nan_not_error():
    from train.eval.localization.predict import Predictions
    from train.eval.localization.quality import quality_report

    masks = np.zeros((2, 4, 4), bool)
    pred = Predictions(np.array([0, 1]), np.array([0.1, 0.9]), masks, masks + 0.1, np.array([-1, -1]), np.ones((2, 1)))
    m = quality_report(pred, {"image_score": 0.5, "pixel": 0.5}, [], "test")
    assert m["image_auroc"] == 1.0 and np.isnan(m["pixel_auroc"]) and np.isnan(m["aupro"])
    assert m["verdicts"]["accuracy"] == 1.0 and m["split"] == "test" and m["per_class"] == {}


def test_quality_report_per_defect_aupro_per_class_recall_and_published_share():
    from train.eval.localization.predict import Predictions
    from train.eval.localization.quality import quality_report

    masks = np.zeros((4, 8, 8), bool)
    masks[1, 2:4, 2:4] = masks[2, 5:7, 1:3] = True
    maps = np.where(masks, 0.9, 0.1)
    maps[2] = np.where(masks[2], 0.05, 0.1)  # the second defect type is found nowhere
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4], [0.5, 0.5]])
    pred = Predictions(
        np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.2, 0.3]), masks, maps, np.array([-1, 0, 1, -1]), probs
    )
    m = quality_report(pred, {"image_score": 0.5, "pixel": 0.5, "class_confidence": 0.8}, ["dent", "crack"], "test")
    assert m["aupro_by_defect"]["dent"] == pytest.approx(1.0) and m["aupro_by_defect"]["crack"] < 0.05
    assert m["verdicts"]["miss_rate"] == 0.5 and m["verdicts"]["overkill_rate"] == 0.0
    assert m["per_class"]["dent"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert m["per_class"]["crack"]["recall"] == 0.0
    assert m["class_publishing"] == {"cutoff": 0.8, "published_share": 0.5, "published_accuracy": 1.0}
    assert m["mean_iou_defective"] == pytest.approx(0.5)


def test_a_model_without_classes_still_gets_its_figures_per_defect_type():
    from train.eval.localization.predict import Predictions
    from train.eval.localization.quality import format_quality, quality_report

    # given a normal-only model (no classes of its own) on a split with two defect types,
    # whose scores rank the dents above every good part and the cracks below them
    masks = np.zeros((4, 8, 8), bool)
    masks[1, 2:4, 2:4] = masks[2, 5:7, 1:3] = True
    maps = np.where(masks, 0.9, 0.1)
    pred = Predictions(
        np.array([0, 1, 1, 0]), np.array([0.3, 0.9, 0.1, 0.2]), masks, maps, np.array([-1, 0, 1, -1]), np.ones((4, 1))
    )
    m = quality_report(pred, {"image_score": 0.5, "pixel": 0.5}, [], "test", defect_types=["dent", "crack"])
    # then each type has its own image AUROC and AUPRO, and no class figure is made up
    assert m["image_auroc_by_defect"] == {"dent": 1.0, "crack": 0.0}
    assert set(m["aupro_by_defect"]) == {"dent", "crack"}
    assert m["per_class"] == {} and np.isnan(m["class_accuracy"])
    assert "image AUROC per defect  dent 1.000  crack 0.000" in format_quality(m)
