"""The synthetic line: layout, determinism, pixel-exact masks, report, contact sheet."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from train.data.synth import DEFECT_TYPES, PART_TYPES, SynthConfig, defects_for, generate_line
from train.data.synth.generate import stem_for
from train.data.synth.parts import DATASET_DOMAIN, render_pair, sample_rng

SMALL = dict(image_size_px=96, ok_per_part=2, ng_per_defect=1, parts=tuple(PART_TYPES), stream_frames=10)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "line"
    report = generate_line(SynthConfig(seed=3, **SMALL), out, progress=False)
    return out, report


def test_layout_is_ddqa_raw_with_one_mask_per_ng_image(line):
    # given a generated line with every part type
    out, report = line
    root = out / "SynthLine"
    # then every part has its OK images and, per defect, images and masks with the same stems
    assert sorted(p.name for p in root.iterdir()) == sorted(PART_TYPES)
    for part in PART_TYPES:
        assert len(list((root / part / "OK" / "image").glob("*.png"))) == 2
        assert sorted(p.name for p in (root / part / "NG").iterdir()) == sorted(defects_for(part))
        for defect in defects_for(part):
            images = sorted(p.name for p in (root / part / "NG" / defect / "image").iterdir())
            masks = sorted(p.name for p in (root / part / "NG" / defect / "mask").iterdir())
            assert images == masks == [f"{stem_for(part, defect, 0)}.png"]
    assert report.images == sum(2 + len(defects_for(p)) for p in PART_TYPES)


def test_masks_are_binary_same_size_and_not_empty(line):
    out, _ = line
    masks = list((out / "SynthLine").glob("*/NG/*/mask/*.png"))
    assert masks
    for mask_file in masks:
        mask = _read(mask_file)
        image = _read(mask_file.parent.parent / "image" / mask_file.name)
        assert mask.dtype == np.uint8 and mask.ndim == 2
        assert image.shape == (96, 96, 3) and mask.shape == image.shape[:2]
        assert set(np.unique(mask)) == {0, 255}, mask_file


def test_every_defect_type_is_produced(line):
    out, _ = line
    produced = {p.parent.parent.name for p in (out / "SynthLine").glob("*/NG/*/mask/*.png")}
    assert produced == set(DEFECT_TYPES)


def test_mask_is_exactly_the_pixels_the_defect_changed(line):
    # given each written NG image, re-rendered clean and defective from its own seed
    out, _ = line
    for part in PART_TYPES:
        for defect in defects_for(part):
            pair = render_pair(sample_rng(3, DATASET_DOMAIN, part, defect, 0), part, defect, 96)
            folder = out / "SynthLine" / part / "NG" / defect
            name = f"{stem_for(part, defect, 0)}.png"
            # then the files are that rendering
            assert np.array_equal(_read(folder / "image" / name), pair.image)
            assert np.array_equal(_read(folder / "mask" / name), pair.mask)
            # and outside the mask nothing changed, inside every pixel did
            changed = np.any(pair.image != pair.clean, axis=2)
            assert np.array_equal(changed, pair.mask > 0), (part, defect)
            assert changed.sum() >= 6


def test_ok_image_equals_the_clean_rendering_of_its_seed(line):
    out, _ = line
    pair = render_pair(sample_rng(3, DATASET_DOMAIN, "pcb", None, 1), "pcb", None, 96)
    written = _read(out / "SynthLine" / "pcb" / "OK" / "image" / f"{stem_for('pcb', None, 1)}.png")
    assert np.array_equal(written, pair.clean)


def test_same_seed_gives_identical_files_and_another_seed_differs(line, tmp_path):
    out, _ = line
    again = tmp_path / "again"
    generate_line(SynthConfig(seed=3, **SMALL), again, progress=False)
    assert _files(again) == _files(out)
    other = tmp_path / "other"
    generate_line(SynthConfig(seed=4, **SMALL), other, progress=False)
    first, second = _files(out), _files(other)
    assert {k for k in first if not k.startswith("stream")} == {k for k in second if not k.startswith("stream")}
    assert first["stream/line.avi"] != second["stream/line.avi"]
    pngs = [k for k in first if k.startswith("SynthLine") and "/image/" in k]
    assert all(first[k] != second[k] for k in pngs)


def test_a_part_looks_the_same_whatever_else_is_generated(tmp_path):
    # given the same seed with a different selection of parts
    small = dict(image_size_px=64, ok_per_part=1, ng_per_defect=1, stream_frames=0)
    generate_line(SynthConfig(seed=1, parts=("pcb",), **small), tmp_path / "a", progress=False)
    generate_line(SynthConfig(seed=1, parts=("brick", "pcb"), **small), tmp_path / "b", progress=False)
    # then pcb's files are identical
    assert _files(tmp_path / "a" / "SynthLine" / "pcb") == _files(tmp_path / "b" / "SynthLine" / "pcb")


def test_defects_vary_in_size_and_place(line):
    out, _ = line
    boxes = set()
    areas = []
    for mask_file in (out / "SynthLine").glob("*/NG/*/mask/*.png"):
        ys, xs = np.nonzero(_read(mask_file))
        boxes.add((xs.min() // 8, ys.min() // 8))
        areas.append(len(xs))
    assert len(boxes) >= len(areas) // 2
    assert max(areas) > 3 * min(areas)


def test_report_counts_match_the_files(line):
    out, report = line
    body = json.loads((out / "synth_report.json").read_text())
    assert body["seed"] == 3 and body["config"]["image_size_px"] == 96
    assert body["generator_version"] >= 1 and body["eiad_version"]
    for part, counts in body["counts"].items():
        assert counts["OK"] == len(list((out / "SynthLine" / part / "OK" / "image").iterdir()))
        for defect in defects_for(part):
            assert counts[defect] == len(list((out / "SynthLine" / part / "NG" / defect / "image").iterdir()))
    assert body["totals"]["images"] == report.images
    assert report.counts == body["counts"]


def test_contact_sheet_is_a_readable_grid(line):
    out, report = line
    sheet = _read(report.contact_sheet)
    cells = len(PART_TYPES) + sum(len(defects_for(p)) for p in PART_TYPES)  # one OK + one per defect
    assert sheet.ndim == 3 and sheet.shape[1] >= 4 * 2 * 160
    assert sheet.shape[0] >= -(-cells // 4) * 160
    red = (sheet[..., 0] > 120) & (sheet[..., 1] < 60) & (sheet[..., 2] < 60)
    assert red.sum() > 100  # the mask overlays are drawn


def test_config_rejects_unknown_keys_and_parts():
    with pytest.raises(ValidationError):
        SynthConfig(colour="blue")
    with pytest.raises(ValidationError, match="unknown part"):
        SynthConfig(parts="pcb,bolt")
    assert SynthConfig(parts="pcb, brick").parts == ("pcb", "brick")
