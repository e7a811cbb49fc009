"""Bad input to the DDQA builder: each case is skipped with its reason by default and
stops the build with a DataError naming the file under --strict; nothing is written
outside the output directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eiad.errors import DataError
from tests.unit.test_ddqa_tree import make_tree, write
from train.data.ddqa.build import DdqaOptions, build_ddqa

SMALL = {("D", "S", "crack"): 3, ("D", "S", "hole"): 3}
NG = Path("D/S/NG/crack")


def _first(folder: Path) -> Path:
    return sorted(folder.iterdir())[0]


def mask_missing(root: Path, outside: Path) -> Path:
    _first(root / NG / "mask").unlink()
    return _first(root / NG / "image")


def mask_size_mismatch(root: Path, outside: Path) -> Path:
    mask = _first(root / NG / "mask")
    write(mask, np.full((7, 9), 255, np.uint8))
    return mask


def image_empty(root: Path, outside: Path) -> Path:
    image = _first(root / NG / "image")
    image.write_bytes(b"")
    return image


def image_unreadable(root: Path, outside: Path) -> Path:
    image = root / "D" / "S" / "OK" / "image" / "notes.png"
    image.write_text("this is text, not a PNG")
    return image


def mask_unreadable(root: Path, outside: Path) -> Path:
    mask = _first(root / NG / "mask")
    mask.write_bytes(b"")
    return mask


def mask_empty(root: Path, outside: Path) -> Path:
    mask = _first(root / NG / "mask")
    write(mask, np.zeros((40, 60), np.uint8))  # first fixture image is 40x60
    return mask


def unknown_extension(root: Path, outside: Path) -> Path:
    path = root / NG / "image" / "readme.txt"
    path.write_text("camera 3")
    return path


def malformed_tree(root: Path, outside: Path) -> Path:
    defect = root / "D" / "S" / "NG" / "dent"
    write(defect / "mask" / "x.png", np.full((8, 8), 255, np.uint8))  # mask/ but no image/
    return defect


def orphan_mask(root: Path, outside: Path) -> Path:
    return write(root / NG / "mask" / "ghost.png", np.full((8, 8), 255, np.uint8))


def mask_ambiguous(root: Path, outside: Path) -> Path:
    image = _first(root / NG / "image")
    write(root / NG / "mask" / f"{image.stem}.jpg", np.full((40, 60), 255, np.uint8))
    return image


def outside_root_file(root: Path, outside: Path) -> Path:
    target = write(outside / "elsewhere.png", np.full((10, 10, 3), 128, np.uint8))
    link = root / "D" / "S" / "OK" / "image" / "linked.png"
    link.symlink_to(target)
    return link


def outside_root_dir(root: Path, outside: Path) -> Path:
    make_tree(outside / "other", {("X", "Y", "crack"): 2}, ok_per_sub=1)
    link = root / "D" / "S" / "NG" / "escaped"
    link.symlink_to(outside / "other" / "X" / "Y" / "NG" / "crack", target_is_directory=True)
    return link


CASES = {
    mask_missing: "mask_missing",
    mask_size_mismatch: "mask_size_mismatch",
    image_empty: "image_empty",
    image_unreadable: "image_unreadable",
    mask_unreadable: "mask_unreadable",
    mask_empty: "mask_empty",
    unknown_extension: "unknown_extension",
    malformed_tree: "malformed_tree",
    orphan_mask: "orphan_mask",
    mask_ambiguous: "mask_ambiguous",
    outside_root_file: "outside_root",
    outside_root_dir: "outside_root",
}


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "raw", SMALL, ok_per_sub=3), tmp_path / "outside"


def _all_images(out: Path) -> set[str]:
    split = json.loads((out / "split.json").read_text())
    return {entry["image"] for part in ("train", "calibration", "test") for entry in split[part]}


@pytest.mark.parametrize("spoil", CASES, ids=[f.__name__ for f in CASES])
def test_default_skips_the_file_and_reports_the_reason(tree, tmp_path, spoil):
    # given a tree with one bad file
    root, outside = tree
    bad = spoil(root, outside)
    reason = CASES[spoil]
    # when it is built without --strict
    out = tmp_path / "out"
    report = build_ddqa(root, out, DdqaOptions(progress=False))
    # then the build goes on, and report.json names the file and the reason
    assert report.skipped_counts == {reason: 1}
    stored = json.loads((out / "report.json").read_text())
    assert stored["skipped_counts"] == {reason: 1}
    (item,) = stored["skipped"]
    assert item["reason"] == reason and item["path"] == str(bad) and item["message"]
    assert str(bad) not in _all_images(out)
    assert not any("elsewhere" in image or "other" in image for image in _all_images(out))
    assert report.images_used >= 8


@pytest.mark.parametrize("spoil", CASES, ids=[f.__name__ for f in CASES])
def test_strict_fails_naming_the_file_and_writes_nothing(tree, tmp_path, spoil):
    root, outside = tree
    bad = spoil(root, outside)
    out = tmp_path / "out"
    with pytest.raises(DataError) as caught:
        build_ddqa(root, out, DdqaOptions(progress=False, strict=True))
    assert str(bad) in str(caught.value)
    assert not out.exists()


def test_symlink_inside_the_root_is_followed(tree, tmp_path):
    # a link that stays inside the root is fine (trees often share OK images this way)
    root, _ = tree
    target = _first(root / "D" / "S" / "OK" / "image")
    (root / "D" / "S" / "OK" / "image" / "alias.png").symlink_to(target)
    report = build_ddqa(root, tmp_path / "out", DdqaOptions(progress=False, strict=True))
    assert report.skipped_counts == {} and report.images_used == 6 + 3 + 1


def test_tree_with_only_bad_files_is_an_error(tmp_path):
    root = tmp_path / "raw"
    (root / "D" / "S" / "OK" / "image").mkdir(parents=True)
    (root / "D" / "S" / "OK" / "image" / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match="no usable image"):
        build_ddqa(root, tmp_path / "out", DdqaOptions(progress=False))


def test_missing_root_and_empty_root_are_errors(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        build_ddqa(tmp_path / "nope", tmp_path / "out", DdqaOptions(progress=False))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        build_ddqa(tmp_path / "empty", tmp_path / "out", DdqaOptions(progress=False))


def test_loose_root_files_and_non_dataset_folders_are_ignored_not_fatal(tree, tmp_path):
    # given a root like a generator's output: a report file and a stream/ folder beside the dataset
    root, _ = tree
    (root / "synth_report.json").write_text("{}")
    write(root / "stream" / "masks" / "000001.png", np.full((8, 8), 255, np.uint8))
    # when built under --strict, then nothing fails and both are listed as ignored
    report = build_ddqa(root, tmp_path / "out", DdqaOptions(progress=False, strict=True))
    assert sorted(Path(item.path).name for item in report.ignored) == ["stream", "synth_report.json"]
    assert report.skipped_counts == {} and report.images_used == 9
    stored = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(stored["ignored"]) == 2


def test_escaping_sub_folder_beside_a_good_one_is_reported_once(tree, tmp_path):
    root, outside = tree
    make_tree(outside / "other", {("X", "Y", "crack"): 2}, ok_per_sub=1)
    (root / "D" / "Z").symlink_to(outside / "other" / "X" / "Y", target_is_directory=True)
    report = build_ddqa(root, tmp_path / "out", DdqaOptions(progress=False))
    assert report.skipped_counts == {"outside_root": 1} and report.images_used == 9
