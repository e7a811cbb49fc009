"""build_ddqa end to end on a fixture tree: files, answers (recomputed from the masks),
split, determinism, letter balance, record forms, paths, few classes, output dir rules, CLI."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from commands.main import main as eiad_main
from eiad.description.check import read_claims
from eiad.errors import DataError
from eiad.split import load_split
from tests.unit.test_ddqa_tree import (
    CLASSES,
    OK_PER_SUB,
    expected_box,
    expected_quadrant,
    make_tree,
    mask_of,
    parse_options,
    raw_tree,  # noqa: F401
    write,
)
from train.data.ddqa.build import DdqaOptions, build_ddqa

ALL_CLASSES = sorted({defect for _, _, defect in CLASSES})
TASK_FILES = ("Task_AD.jsonl", "Task_DC.jsonl", "Task_RDL.jsonl", "Task_DFM.jsonl", "Task_DD.jsonl")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def prompt_answer(record: dict) -> tuple[str, str, Path]:
    if "messages" in record:
        user, assistant = record["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        return user["content"], assistant["content"], Path(record["images"][0])
    return record["query"], record["response"], Path(record["images"][0])


HELD_OUT = ("calibration", "test")


def task_files(out: Path) -> dict[tuple[str, str], Path]:
    files = {("train", name): out / name for name in TASK_FILES}
    for split in HELD_OUT:
        files.update({(split, name): out / split / name for name in TASK_FILES})
    return files


def build(raw: Path, out: Path, **options) -> object:
    return build_ddqa(raw, out, DdqaOptions(progress=False, **options))


@pytest.fixture(scope="module")
def built(raw_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddqa_out") / "ddqa"
    return build(raw_tree, out, seed=3), out


def check_answer(task: str, prompt: str, answer: str, image: Path, n_classes: int) -> None:
    """Recompute the answer from the layout and the mask file, independently of the builder."""
    assert prompt.startswith("<image>")
    is_ng = image.parent.parent.parent.name == "NG"
    if task == "DFM":
        assert answer == "[" + ", ".join(f"{v:.3f}" for v in expected_box(mask_of(image))) + "]"
        return
    if task == "DD":
        check_description(answer, image, is_ng)
        return
    options = parse_options(prompt)
    assert prompt.splitlines()[-1].lower().count("letter") == 1  # ends asking for the letter
    truth = {
        "AD": "Yes" if is_ng else "No",
        "DC": image.parent.parent.name if is_ng else None,
        "RDL": expected_quadrant(mask_of(image)) if is_ng else None,
    }[task]
    assert options[answer] == truth
    assert len(set(options.values())) == len(options)
    expected_count = {"AD": 2, "DC": min(4, n_classes), "RDL": 4}[task]
    assert sorted(options) == list("ABCD"[:expected_count])


def check_description(answer: str, image: Path, is_ng: bool) -> None:
    """The description's class, place, area and appearance, recomputed here from the files."""
    claims = read_claims(answer, ALL_CLASSES)
    if not is_ng:
        assert claims.no_defect and not claims.classes and not claims.locations
        return
    defect = mask_of(image)
    height, width = defect.shape
    ys, xs = np.nonzero(defect)
    centred = abs((xs.mean() + 0.5) / width - 0.5) < 1 / 6 and abs((ys.mean() + 0.5) / height - 0.5) < 1 / 6
    assert claims.classes == {image.parent.parent.name} and not claims.no_defect
    assert claims.locations == {"centre" if centred else expected_quadrant(defect)}
    assert f"({int(defect.sum())} pixels)" in answer
    grey = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE).astype(float)
    ring = cv2.dilate(defect.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~defect
    contrast = grey[defect].mean() - grey[ring].mean()
    if abs(contrast) > 15:  # clearly darker or brighter, whatever the ring's exact width
        assert claims.appearances == {"darker" if contrast < 0 else "brighter"}, (answer, contrast)
    assert len(answer.split()) >= 12


def test_writes_all_files_and_every_record_points_to_an_existing_image(built):
    report, out = built
    for path in task_files(out).values():
        for record in read_jsonl(path):
            assert set(record) == {"query", "response", "images"}
            image = Path(record["images"][0])
            assert image.is_absolute() and image.is_file()
    assert (out / "train.jsonl").is_file() and (out / "calibration" / "calibration.jsonl").is_file()
    assert (out / "test" / "test.jsonl").is_file()
    assert report.skipped_counts == {}


def test_answers_agree_with_masks_for_all_five_tasks(built):
    _, out = built
    n_classes = len({d for _, _, d in CLASSES})
    for (_, name), path in task_files(out).items():
        task = name[len("Task_") : -len(".jsonl")]
        records = read_jsonl(path)
        assert records, path
        for record in records:
            check_answer(task, *prompt_answer(record), n_classes)


def test_record_counts_per_task_and_all_tasks_file(built):
    report, out = built
    n_ng = sum(CLASSES.values())
    n_all = n_ng + OK_PER_SUB * len({(d, s) for d, s, _ in CLASSES})
    files = task_files(out)
    per_task = {name: sum(len(read_jsonl(files[(s, name)])) for s in ("train", *HELD_OUT)) for name in TASK_FILES}
    assert per_task == {
        "Task_AD.jsonl": n_all,
        "Task_DC.jsonl": n_ng,
        "Task_RDL.jsonl": n_ng,
        "Task_DFM.jsonl": n_ng,
        "Task_DD.jsonl": n_all,
    }
    train_all = read_jsonl(out / "train.jsonl")
    assert train_all == [r for name in TASK_FILES for r in read_jsonl(files[("train", name)])]
    for split in HELD_OUT:
        every = read_jsonl(out / split / f"{split}.jsonl")
        assert every == [r for name in TASK_FILES for r in read_jsonl(files[(split, name)])]
        assert len(every) == sum(report.records[split].values())


def test_split_is_by_image_stratified_and_matches_split_json(built, raw_tree):
    report, out = built
    index = load_split(out)
    images = {split: {e.image for e in index.entries(split)} for split in ("train", *HELD_OUT)}
    assert all(images.values())
    assert not images["train"] & images["calibration"] and not images["train"] & images["test"]
    assert not images["calibration"] & images["test"]  # thresholds are never fitted on a test image
    for split, members in images.items():
        folder = out if split == "train" else out / split
        used = {r["images"][0] for name in TASK_FILES for r in read_jsonl(folder / name)}
        assert used == members
    # every (dataset, sub, class) has >= 3 images here, so one in each held-out part
    for split in HELD_OUT:
        assert set(CLASSES) <= {(e.dataset, e.sub, e.defect or "OK") for e in index.entries(split)}
    assert index.classes == sorted({d for _, _, d in CLASSES}) and index.seed == 3
    assert index.root == str(raw_tree.absolute()) and index.fractions == {"calibration": 0.2, "test": 0.2}
    for entry in index.train + index.calibration + index.test:
        assert Path(entry.image).is_absolute() and (entry.mask is None) == (entry.label == "OK")


def test_same_seed_same_bytes_other_seed_other_split(raw_tree, tmp_path):
    build(raw_tree, tmp_path / "a", seed=11)
    build(raw_tree, tmp_path / "b", seed=11)
    build(raw_tree, tmp_path / "c", seed=12)
    for name in ("train.jsonl", "calibration/calibration.jsonl", "test/test.jsonl", "split.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    test_a = {e.image for e in load_split(tmp_path / "a").test}
    test_c = {e.image for e in load_split(tmp_path / "c").test}
    assert test_a != test_c


def test_correct_letters_are_balanced_per_task_file(built):
    _, out = built
    for (_, name), path in task_files(out).items():
        if name in ("Task_DFM.jsonl", "Task_DD.jsonl"):
            continue
        records = read_jsonl(path)
        n_options = len(parse_options(prompt_answer(records[0])[0]))
        counts = Counter(prompt_answer(r)[1] for r in records)
        per_letter = [counts.get(letter, 0) for letter in "ABCD"[:n_options]]
        assert max(per_letter) - min(per_letter) <= 1, (path, counts)


def test_messages_form_and_relative_paths(raw_tree, tmp_path):
    out = tmp_path / "msg"
    build(raw_tree, out, seed=3, record_format="messages", relative_paths=True)
    for path in task_files(out).values():
        for record in read_jsonl(path):
            assert set(record) == {"messages", "images"}
            prompt, answer, image = prompt_answer(record)
            assert not image.is_absolute()
            assert (out / image).resolve().is_file()
    # same questions and answers as the query form with the same seed
    build(raw_tree, tmp_path / "q", seed=3)
    first_msg = prompt_answer(read_jsonl(out / "Task_RDL.jsonl")[0])
    first_query = prompt_answer(read_jsonl(tmp_path / "q" / "Task_RDL.jsonl")[0])
    assert first_msg[:2] == first_query[:2]
    assert os.path.samefile(out / first_msg[2], first_query[2])


def test_three_classes_give_three_options(tmp_path):
    raw = make_tree(tmp_path / "raw", {("D", "S", "a"): 3, ("D", "S", "b"): 3, ("E", "T", "c"): 2}, ok_per_sub=2)
    report = build(raw, tmp_path / "out")
    assert report.dc_options == 3 and any("3 options" in note for note in report.notes)
    for path in (tmp_path / "out" / "Task_DC.jsonl", tmp_path / "out" / "test" / "Task_DC.jsonl"):
        for record in read_jsonl(path):
            check_answer("DC", record["query"], record["response"], Path(record["images"][0]), 3)


def test_single_class_skips_dc_but_builds_the_rest(tmp_path):
    raw = make_tree(tmp_path / "raw", {("D", "S", "only"): 4}, ok_per_sub=2)
    report = build(raw, tmp_path / "out")
    assert report.dc_options == 0 and report.records["train"]["DC"] == 0
    assert (tmp_path / "out" / "Task_DC.jsonl").read_text() == ""
    # 4 images: round(0.8) = 1 each for calibration and test, 2 train
    assert report.records["train"]["RDL"] == 2 and report.records["calibration"]["RDL"] == 1
    assert report.records["test"]["RDL"] == 1


def test_refuses_non_empty_output_without_force_and_keeps_other_files(raw_tree, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        build(raw_tree, out)
    build(raw_tree, out, force=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "train.jsonl").is_file()


def test_refuses_output_inside_the_raw_root(tmp_path):
    raw = make_tree(tmp_path / "raw", {("D", "S", "a"): 2, ("D", "S", "b"): 2}, ok_per_sub=2)
    before = sorted(p for p in raw.rglob("*"))
    with pytest.raises(DataError, match="inside the raw root"):
        build(raw, raw / "D" / "S" / "NG" / "a" / "image" / "ddqa")
    assert sorted(p for p in raw.rglob("*")) == before


def test_cli_smoke_prints_summary(raw_tree, tmp_path, capsys):
    out = tmp_path / "cli"
    code = eiad_main(
        [
            "-q",
            "data",
            "ddqa",
            str(raw_tree),
            "--out",
            str(out),
            "--format",
            "messages",
            "--seed",
            "5",
            "--calibration-fraction",
            "0.3",
            "--test-fraction",
            "0.4",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "records" in printed and "correct letter balance" in printed and "crack" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["test_fraction"] == 0.4 and report["options"]["calibration_fraction"] == 0.3
    assert report["options"]["record_format"] == "messages"
    assert "messages" in read_jsonl(out / "Task_AD.jsonl")[0]


def test_cli_rejects_bad_fractions(raw_tree, tmp_path, capsys):
    code = eiad_main(["data", "ddqa", str(raw_tree), "--out", str(tmp_path / "x"), "--test-fraction", "1.5"])
    assert code == 2 and "test-fraction" in capsys.readouterr().err
    code = eiad_main(
        [
            "data",
            "ddqa",
            str(raw_tree),
            "--out",
            str(tmp_path / "y"),
            "--test-fraction",
            "0.5",
            "--calibration-fraction",
            "0.5",
        ]
    )
    assert code == 2 and "leave images for training" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_old_two_part_split_is_refused_with_the_fix(tmp_path):
    (tmp_path / "split.json").write_text(
        json.dumps({"seed": 0, "val_fraction": 0.2, "root": "/r", "classes": [], "train": [], "val": []})
    )
    with pytest.raises(DataError, match="old two-part layout.*eiad data ddqa"):
        load_split(tmp_path)


def test_descriptions_say_darker_or_brighter_when_the_defect_is(raw_tree, tmp_path):
    # given the same tree with every defect painted darker (plate) or brighter (rod, weave)
    import shutil

    raw = shutil.copytree(raw_tree, tmp_path / "raw")
    painted = {}
    for image in raw.glob("*/*/NG/*/image/*"):
        defect = mask_of(image)
        pixels = cv2.imread(str(image), cv2.IMREAD_UNCHANGED).astype(int)
        shift = -90 if image.parts[-5] == "plate" else 90
        pixels[defect] = np.clip(pixels[defect] + shift, 0, 255)
        write(image, pixels.astype(np.uint8))
        painted[image.name] = "darker" if shift < 0 else "brighter"
    # when built
    build(raw, tmp_path / "ddqa", seed=1)
    # then each description says how the defect looks
    said = {}
    for path in (tmp_path / "ddqa").rglob("Task_DD.jsonl"):
        for record in read_jsonl(path):
            prompt, answer, image = prompt_answer(record)
            if image.name in painted:
                said[image.name] = read_claims(answer, ALL_CLASSES).appearances
    assert said == {name: {look} for name, look in painted.items()}


def test_good_parts_can_keep_a_larger_calibration_share_without_moving_defects():
    from train.data.ddqa.build import split_samples
    from train.data.ddqa.scan import Sample

    def sample(defect, i):
        name = f"{defect or 'ok'}{i}.png"
        return Sample(Path(f"/x/{name}"), None, "D", "S", "NG" if defect else "OK", defect, name, 8, 8, None)

    samples = [sample(None, i) for i in range(50)] + [sample("crack", i) for i in range(50)]
    plain = split_samples(samples, 0, 0.2, 0.2)
    more = split_samples(samples, 0, 0.2, 0.2, good_calibration_fraction=0.5)

    def count(parts, split, defect):
        return sum(s.defect == defect for s in parts[split])

    assert (count(plain, "calibration", None), count(more, "calibration", None)) == (10, 25)
    assert count(more, "train", None) == 15 and count(more, "test", None) == 10
    # the defects' split is exactly the one without the option
    assert [s for s in more["train"] if s.defect] == [s for s in plain["train"] if s.defect]
    with pytest.raises(ValueError, match="good calibration \\+ test"):
        DdqaOptions(good_calibration_fraction=0.85, test_fraction=0.2)
