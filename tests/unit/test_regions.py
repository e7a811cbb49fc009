"""edge/verdict.py regions_of: regions in map coordinates, whatever box is labelled."""

from __future__ import annotations

import numpy as np

from edge.verdict import regions_of


def test_regions_far_apart_keep_their_coordinates_and_small_specks_are_removed():
    anomaly = np.zeros((64, 80), np.float32)
    anomaly[5:9, 60:70] = 0.9  # 4 x 10 = 40 px, top right
    anomaly[50:60, 3:6] = 0.7  # 10 x 3 = 30 px, bottom left
    anomaly[30, 40] = 0.95  # a 1-pixel speck in between
    mask, regions = regions_of(anomaly, pixel_threshold=0.5, min_area_px=5)
    assert [(r.box_xyxy, r.area_px) for r in regions] == [((60, 5, 70, 9), 40), ((3, 50, 6, 60), 30)]
    assert [round(r.max_score, 2) for r in regions] == [0.9, 0.7]
    assert int(np.count_nonzero(mask)) == 70 and mask[30, 40] == 0 and mask[5, 60] == 255 and mask[59, 5] == 255


def test_a_cool_map_has_no_regions_and_an_empty_mask():
    mask, regions = regions_of(np.full((32, 32), 0.2, np.float32), pixel_threshold=0.5, min_area_px=0)
    assert regions == () and mask.shape == (32, 32) and not mask.any()
