"""DDQA raw-tree fixtures (imported by the other test_ddqa* files) and layout discovery tests.

The fixture tree has masks with known rectangles/blobs so answers can be worked out by
hand; `expected_*` below recompute them with plain numpy, independently of the builder.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from train.data.ddqa.scan import Problems, scan_tree

QUADRANT_NAMES = ("top left", "top right", "bottom left", "bottom right")

# (dataset, sub, defect) -> number of NG images; each sub also gets OK images.
CLASSES = {
    ("Metal", "plate", "crack"): 5,
    ("Metal", "plate", "hole"): 5,
    ("Metal", "rod", "scratch"): 4,
    ("Fabric", "weave", "stain"): 5,
    ("Fabric", "weave", "hole"): 3,
}
OK_PER_SUB = 6


def _image(height: int, width: int, value: int) -> np.ndarray:
    rng = np.random.default_rng(value)
    return rng.integers(60, 200, size=(height, width, 3), dtype=np.uint8)


def _mask(height: int, width: int, index: int) -> np.ndarray:
    """A different known shape per index: rectangles in each quadrant, two disjoint blobs,
    a rectangle centred on an odd middle line (tie), a thin line."""
    mask = np.zeros((height, width), np.uint8)
    shapes = index % 5
    if shapes == 0:  # top left rectangle
        mask[2:8, 3:10] = 255
    elif shapes == 1:  # bottom right, touching the borders
        mask[height // 2 :, width // 2 :] = 255
    elif shapes == 2:  # two disjoint defects: small top right, bigger bottom left
        mask[1:4, width - 5 : width - 1] = 255
        cv2.circle(mask, (6, height - 7), 5, 255, -1)
    elif shapes == 3:  # symmetric around the centre: a four-way tie
        cy, cx = height // 2, width // 2
        mask[cy - 3 : cy + 3 + height % 2, cx - 4 : cx + 4 + width % 2] = 255
    else:  # thin diagonal scratch mostly in the top right
        cv2.line(mask, (width // 2 + 2, 1), (width - 2, height // 2 - 2), 255, 1)
    return mask


def write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix, array)
    assert ok, path
    path.write_bytes(data.tobytes())
    return path


def make_tree(root: Path, classes: dict = CLASSES, ok_per_sub: int = OK_PER_SUB) -> Path:
    """Write a DDQA raw tree; sizes include odd widths/heights; extensions vary."""
    sizes = [(40, 60), (33, 47), (48, 48), (31, 64)]
    image_ext = [".png", ".jpg", ".PNG", ".bmp"]
    mask_ext = [".png", ".png", ".bmp", ".tif"]  # differs from the image's on purpose
    n = 0
    for (dataset, sub, defect), count in classes.items():
        base = root / dataset / sub / "NG" / defect
        for i in range(count):
            h, w = sizes[n % len(sizes)]
            write(base / "image" / f"{defect}_{i:03d}{image_ext[n % 4]}", _image(h, w, n))
            write(base / "mask" / f"{defect}_{i:03d}{mask_ext[n % 4]}", _mask(h, w, n))
            n += 1
    for dataset, sub in sorted({(d, s) for d, s, _ in classes}):
        for i in range(ok_per_sub):
            h, w = sizes[i % len(sizes)]
            write(root / dataset / sub / "OK" / "image" / f"good_{i:03d}.png", _image(h, w, 1000 + i))
    return root


@pytest.fixture(scope="session")
def raw_tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("ddqa") / "raw")


# ---- independent answers (plain numpy on the mask file) ------------------------------------


def mask_of(image: Path) -> np.ndarray:
    folder = image.parent.parent / "mask"
    (mask_path,) = [p for p in folder.iterdir() if p.stem == image.stem]
    return cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127


def expected_quadrant(defect: np.ndarray) -> str:
    height, width = defect.shape
    ys, xs = np.nonzero(defect)
    cx, cy = xs + 0.5, ys + 0.5  # pixel centres; a centre on the mid line counts half to each side
    left = (cx < width / 2) + 0.5 * (cx == width / 2)
    top = (cy < height / 2) + 0.5 * (cy == height / 2)
    areas = [
        float((top * left).sum()),
        float((top * (1 - left)).sum()),
        float(((1 - top) * left).sum()),
        float(((1 - top) * (1 - left)).sum()),
    ]
    return QUADRANT_NAMES[areas.index(max(areas))]  # first wins a tie


def expected_box(defect: np.ndarray) -> list[float]:
    height, width = defect.shape
    ys, xs = np.nonzero(defect)
    return [
        float(f"{v:.3f}")
        for v in (xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height)
    ]


def parse_options(prompt: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-D])\. (.+)$", prompt, flags=re.MULTILINE))


# ---- discovery tests -----------------------------------------------------------------------


def test_discovers_every_image_with_dataset_sub_and_class(raw_tree):
    # given the fixture tree, when it is scanned
    problems = Problems(strict=True)
    samples = scan_tree(raw_tree, problems, progress=False)
    # then every NG and OK image is found with its place in the layout, nothing skipped
    n_subs = len({(d, s) for d, s, _ in CLASSES})
    assert len(samples) == sum(CLASSES.values()) + n_subs * OK_PER_SUB
    assert problems.items == []
    found = {(s.dataset, s.sub, s.defect) for s in samples if s.label == "NG"}
    assert found == set(CLASSES)
    for sample in samples:
        assert sample.image.is_file()
        if sample.label == "NG":
            assert sample.mask.stem == sample.image.stem and sample.mask.is_file()
            assert sample.stats.width_px == sample.width_px
        else:
            assert sample.mask is None and sample.stats is None


def test_upper_case_extension_and_mask_with_other_extension_are_paired(raw_tree):
    samples = scan_tree(raw_tree, Problems(strict=True), progress=False)
    upper = [s for s in samples if s.image.suffix == ".PNG"]
    other = [s for s in samples if s.mask is not None and s.mask.suffix != s.image.suffix]
    assert upper and other


def test_mask_stats_agree_with_hand_computed_shapes(tmp_path):
    # given a 40x60 image whose mask is the bottom-right quarter exactly
    root = tmp_path / "raw"
    write(root / "D" / "S" / "NG" / "dent" / "image" / "a.png", _image(40, 60, 1))
    write(root / "D" / "S" / "NG" / "dent" / "mask" / "a.png", _mask(40, 60, 1))
    (sample,) = scan_tree(root, Problems(strict=True), progress=False)
    # then by hand: box [0.5, 0.5, 1.0, 1.0], quadrant bottom right, 600 px, one region
    assert sample.stats.box == (0.5, 0.5, 1.0, 1.0)
    assert sample.stats.quadrant == "bottom right"
    assert sample.stats.area_px == 20 * 30 and sample.stats.regions == 1


def test_odd_sized_symmetric_mask_is_a_tie_won_by_top_left(tmp_path):
    # given a 33x47 mask symmetric about both (odd) middle lines
    root = tmp_path / "raw"
    write(root / "D" / "S" / "NG" / "dent" / "image" / "a.png", _image(33, 47, 1))
    write(root / "D" / "S" / "NG" / "dent" / "mask" / "a.png", _mask(33, 47, 3))
    (sample,) = scan_tree(root, Problems(strict=True), progress=False)
    # then all four quadrants hold the same area and the documented tie rule picks top left
    areas = sample.stats.quadrant_area_px
    assert len(set(areas)) == 1 and sample.stats.quadrant == "top left"
