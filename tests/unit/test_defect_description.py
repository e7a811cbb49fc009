"""Defect facts measured on masks, the sentences made from them, and the checker that reads them back."""

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eiad.description.check import check_explanation, read_claims
from eiad.description.facts import measure_defect
from eiad.description.sentences import describe_defect, describe_good

CLASSES = ("crack", "scratch", "missing_material", "stain")


def blank(h=100, w=100):
    return np.zeros((h, w), bool)


def test_an_empty_mask_has_no_facts():
    assert measure_defect(blank()) is None


def test_a_thin_line_is_elongated_and_a_blob_compact():
    line, blob = blank(), blank()
    line[20, 10:40] = True
    blob[60:70, 60:72] = True
    assert measure_defect(line).shape == "elongated" and measure_defect(line).aspect == pytest.approx(30.0)
    assert measure_defect(blob).shape == "compact"


def test_a_diagonal_scratch_is_elongated_whatever_its_angle():
    mask = blank()
    for i in range(40):
        mask[10 + i, 10 + i] = mask[10 + i, 11 + i] = True
    assert measure_defect(mask).shape == "elongated"


@pytest.mark.parametrize(
    ("rows", "cols", "where"),
    [
        ((5, 15), (5, 15), "top left"),
        ((5, 15), (80, 90), "top right"),
        ((80, 90), (5, 15), "bottom left"),
        ((80, 90), (80, 90), "bottom right"),
        ((45, 55), (45, 55), "centre"),
    ],
)
def test_location_is_the_quadrant_or_the_centre(rows, cols, where):
    mask = blank()
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    assert measure_defect(mask).location == where


def test_a_mirrored_mask_gets_the_mirrored_quadrant_even_on_an_odd_width():
    mask = blank(99, 99)
    mask[10:20, 30:50] = True  # crosses the middle column 49 on its left side
    assert measure_defect(mask).location == "top left"
    assert measure_defect(mask[:, ::-1]).location == "top right"


def test_touching_the_border_is_near_the_edge_and_the_middle_is_not():
    edge, middle = blank(), blank()
    edge[40:50, 0:3] = True
    middle[40:50, 40:50] = True
    assert measure_defect(edge).near_edge and not measure_defect(middle).near_edge


def test_size_buckets_follow_the_share_of_the_image():
    sizes = {}
    for side in (3, 8, 20, 40):
        mask = blank()
        mask[10 : 10 + side, 10 : 10 + side] = True
        sizes[side] = measure_defect(mask)
    assert [sizes[s].size for s in (3, 8, 20, 40)] == ["tiny", "small", "medium", "large"]
    assert sizes[8].area_px == 64 and sizes[8].area_share == pytest.approx(0.0064)


def test_several_regions_are_counted_and_the_shape_is_the_largest_ones():
    mask = blank()
    mask[10:12, 10:60] = True  # a long scratch
    mask[80:83, 80:83] = True  # a speck
    facts = measure_defect(mask)
    assert facts.regions == 2 and facts.shape == "elongated" and facts.area_px == 109


def test_appearance_compares_inside_with_a_ring_around():
    image = np.full((100, 100, 3), 120, np.uint8)
    mask = blank()
    mask[40:50, 40:50] = True
    dark, bright, same = image.copy(), image.copy(), image.copy()
    dark[mask] = 60
    bright[mask] = 200
    same[mask] = 123
    assert measure_defect(mask, dark).appearance == "darker"
    assert measure_defect(mask, bright).appearance == "brighter"
    assert measure_defect(mask, same).appearance == "similar"
    assert measure_defect(mask).appearance is None
    # a mask covering the whole image has no ring to compare with
    assert measure_defect(np.ones((20, 20), bool), image[:20, :20]).appearance is None


def test_an_image_of_another_size_is_compared_at_the_masks_size():
    image = np.full((200, 200), 120, np.uint8)
    image[80:100, 80:100] = 30
    mask = blank()
    mask[40:50, 40:50] = True
    assert measure_defect(mask, image).appearance == "darker"


masks = st.tuples(st.integers(0, 90), st.integers(0, 90), st.integers(1, 40), st.integers(1, 40), st.integers(0, 255))


@settings(max_examples=60, deadline=None)
@given(box=masks, seed=st.integers(0, 10_000), cls=st.sampled_from(CLASSES))
def test_every_description_reads_back_as_its_own_facts(box, seed, cls):
    y, x, h, w, level = box
    mask = blank()
    mask[y : y + h, x : x + w] = True
    image = np.full((100, 100), 128, np.uint8)
    image[mask] = level
    facts = measure_defect(mask, image)
    text = describe_defect(facts, cls, random.Random(seed), figures=seed % 2 == 0)
    result = check_explanation(text, "NG", cls, facts, CLASSES)
    assert result.consistent, (text, result.disagreements)
    assert len(text.split()) >= 12
    claims = result.claims
    assert claims.shapes == {facts.shape} and claims.appearances == {facts.appearance} and claims.sizes == {facts.size}


@pytest.mark.parametrize("seed", range(6))
def test_a_good_parts_description_agrees_with_an_ok_verdict(seed):
    text = describe_good(random.Random(seed))
    assert check_explanation(text, "OK", None, None, CLASSES).consistent
    assert check_explanation(text, "NG", "crack", None, CLASSES).disagreements == ("verdict", "class")


def _facts():
    mask = blank()
    mask[10:12, 10:60] = True
    image = np.full((100, 100), 128, np.uint8)
    image[mask] = 40
    return measure_defect(mask, image)


def test_the_checker_says_what_disagrees():
    facts = _facts()  # top left, elongated, darker
    assert facts.location == "top left"
    check = lambda text, cls="scratch": check_explanation(text, "NG", cls, facts, CLASSES)  # noqa: E731
    assert check("A scratch in the top left of the image, elongated and darker.").consistent
    assert check("A crack in the top left of the image.").disagreements == ("class",)
    assert check("A scratch in the bottom right of the image.").disagreements == ("location",)
    assert check("A scratch somewhere.").disagreements == ("location",)
    assert check("A scratch in the top left, compact and brighter.").disagreements == ("shape", "appearance")
    assert check("No defect is visible in the top left.").disagreements == ("verdict", "class")
    assert check("A scratch or a crack in the top left.").disagreements == ("class",)
    # "unknown" published: naming a class claims more than the station did
    assert check("A defect in the top left of the image.", cls="unknown").consistent
    assert check("A stain in the top left of the image.", cls="unknown").disagreements == ("class",)


def test_the_stated_share_and_pixel_count_must_be_the_measured_ones():
    facts = _facts()  # 100 pixels, 1.0 % of a 100x100 image
    assert (facts.area_px, facts.area_share) == (100, 0.01)
    check = lambda text: check_explanation(text, "NG", "scratch", facts, CLASSES)  # noqa: E731
    assert check("A scratch in the top left, 1.0 % of the image (100 pixels).").consistent
    assert check("A scratch in the top left, 1.4 % of the image (100 pixels).").disagreements == ("size",)
    assert check("A scratch in the top left, 1.0 % of the image (140 pixels).").disagreements == ("size",)
    # a small model's garbled digits are not a figure
    assert check("A scratch in the top left, 1.0 % of the image (8\ufffd pixels).").disagreements == ("size",)
    assert check("A scratch in the top left, 1.0 % of the image (spect pixels).").disagreements == ("size",)
    # no figure stated: nothing to disagree with
    assert check("A scratch in the top left of the image.").consistent


def test_claims_read_class_names_with_spaces_or_underscores_and_either_centre_spelling():
    claims = read_claims("Missing material near the CENTER; missing_material again.", CLASSES)
    assert claims.classes == {"missing_material"} and claims.locations == {"centre"}
