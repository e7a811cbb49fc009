"""Build the DDQA training files from any tree in the DDQA raw layout.

    build_ddqa(root, out_dir, DdqaOptions(seed=0)) -> DdqaReport

Steps: scan and validate the tree (ddqa_scan), split by image into train / calibration /
test, stratified per (dataset, sub, defect or OK) and seeded (`split_samples`; what each
part is for: eiad/split.py), ask the five tasks' questions with answers measured on the
masks (and the image, for the description's appearance; ddqa.questions), write the record
files (ddqa.records), `split.json` (eiad.split, the trainer's contract) and
`report.json`. Output layout (OUTPUT_FILES) is documented in docs/ddqa.md. Nothing is
written outside `out_dir`, and nothing at all when the scan fails under `strict`.
Not thread-safe (one build per output directory).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from eiad.errors import DataError
from eiad.split import SPLIT_FILE, SPLITS, ImageEntry, SplitIndex, save_split
from train.data.ddqa.questions import TASKS, Question, dc_option_count, questions_for_split
from train.data.ddqa.records import RecordFormat, image_reference, to_record, write_json, write_jsonl
from train.data.ddqa.report import DdqaReport, letter_counts
from train.data.ddqa.scan import Problems, Sample, scan_tree

log = logging.getLogger(__name__)

TASK_FILES = {task: f"Task_{task}.jsonl" for task in TASKS}
# The training split's files sit at the top of the output directory (what ms-swift is
# pointed at); each held-out split has a folder of its own with the same task files.
HELD_OUT_DIRS = {"calibration": "calibration", "test": "test"}
ALL_TASKS_FILE = {"train": "train.jsonl", "calibration": "calibration.jsonl", "test": "test.jsonl"}
REPORT_FILE = "report.json"


class DdqaOptions(BaseModel):
    """How to build. Validated once; does no I/O."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, description="seeds the split, the templates, the option order and the letters")
    calibration_fraction: float = Field(
        0.2, ge=0.0, lt=1.0, description="share of each class's images kept to fit thresholds"
    )
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="share of each class's images kept for reporting")
    good_calibration_fraction: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="share of the good (OK) images kept for calibration, when it should differ from the "
        "defects' (None: calibration_fraction). A false-reject rate of 1 %% is fitted on the good parts: "
        "more of them make it trustworthy without taking defect images from training.",
    )
    record_format: RecordFormat = Field("query", description="'query' (swift 2.x) or 'messages' (swift 3.x)")
    relative_paths: bool = Field(False, description="image paths relative to the output directory")
    strict: bool = Field(False, description="raise DataError on the first bad file instead of skipping it")
    force: bool = Field(False, description="write into a non-empty output directory (overwrites our files only)")
    progress: bool = Field(True, description="tqdm bar while reading images and masks")

    @model_validator(mode="after")
    def _room_for_training(self) -> DdqaOptions:
        for name, calibration in (("", self.calibration_fraction), ("good ", self.good_calibration_fraction)):
            if calibration is not None and calibration + self.test_fraction >= 1.0:
                raise ValueError(
                    f"{name}calibration + test fractions are {calibration + self.test_fraction:g}: "
                    "they must leave images for training (sum < 1)"
                )
        return self


def output_files(out_dir: Path) -> dict[str, dict[str, Path]]:
    """Per split: task -> file, plus "all" -> the file holding all four tasks."""
    out_dir = Path(out_dir)
    folders = {"train": out_dir, **{split: out_dir / name for split, name in HELD_OUT_DIRS.items()}}
    return {
        split: {**{t: folder / f for t, f in TASK_FILES.items()}, "all": folder / ALL_TASKS_FILE[split]}
        for split, folder in folders.items()
    }


def held_out_counts(n_images: int, calibration_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(calibration, test) images of one stratum of `n_images`.

    Each is round(n * fraction), at least 1 when its fraction is > 0, and at least one image
    stays for training. When a small stratum cannot give every part one image, test comes
    first (a class missing from the test split has no figure), then calibration: 1 image ->
    train only; 2 -> train + test; 3 or more -> every part gets one.
    """
    if n_images < 2:
        return 0, 0
    want = lambda f: max(1, int(n_images * f + 0.5)) if f > 0 else 0  # noqa: E731
    n_test = min(want(test_fraction), n_images - 1)
    n_cal = min(want(calibration_fraction), n_images - 1 - n_test)
    return n_cal, n_test


def split_samples(
    samples: list[Sample],
    seed: int,
    calibration_fraction: float,
    test_fraction: float,
    good_calibration_fraction: float | None = None,
) -> dict[str, list[Sample]]:
    """Split by image into train / calibration / test, stratified per (dataset, sub, defect/OK),
    deterministic by seed; every part sorted by image key. Good (OK) groups keep
    `good_calibration_fraction` for calibration when it is given."""
    groups: dict[tuple[str, str, str], list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[sample.group].append(sample)
    parts: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    for group, members in sorted(groups.items()):
        order = sorted(members, key=lambda s: s.key)
        random.Random("|".join([str(seed), "split", *group])).shuffle(order)
        calibration = calibration_fraction
        if group[2] == "OK" and good_calibration_fraction is not None:
            calibration = good_calibration_fraction
        n_cal, n_test = held_out_counts(len(order), calibration, test_fraction)
        parts["test"] += order[:n_test]
        parts["calibration"] += order[n_test : n_test + n_cal]
        parts["train"] += order[n_test + n_cal :]
    return {split: sorted(members, key=lambda s: s.key) for split, members in parts.items()}


def check_output_dir(root: Path, out_dir: Path, force: bool) -> None:
    real_out, real_root = out_dir.resolve(), root.resolve()
    if real_out == real_root or real_out.is_relative_to(real_root):
        raise DataError(
            f"output directory {out_dir} is inside the raw root {root}: the next scan would "
            "read the jsonl files as a malformed dataset; choose a directory outside the root"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"output path {out_dir} is a file; pass a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise DataError(
            f"output directory {out_dir} is not empty; choose an empty one or pass --force "
            "(which overwrites only the DDQA files, split.json and report.json)"
        )


def _catalog(samples: list[Sample]) -> dict[tuple[str, str], list[str]]:
    names: dict[tuple[str, str], set[str]] = defaultdict(set)
    for sample in samples:
        if sample.defect is not None:
            names[(sample.dataset, sample.sub)].add(sample.defect)
    return {key: sorted(value) for key, value in sorted(names.items())}


def _entry(sample: Sample) -> ImageEntry:
    return ImageEntry(
        image=str(sample.image),
        mask=str(sample.mask) if sample.mask else None,
        label=sample.label,
        defect=sample.defect,
        dataset=sample.dataset,
        sub=sample.sub,
    )


def _write_split(
    questions: dict[str, list[Question]], files: dict[str, Path], out_dir: Path, options: DdqaOptions
) -> dict[str, int]:
    files["all"].parent.mkdir(parents=True, exist_ok=True)
    records = {
        task: [
            to_record(q, options.record_format, image_reference(q.sample.image, out_dir, options.relative_paths))
            for q in questions[task]
        ]
        for task in TASKS
    }
    counts = {task: write_jsonl(files[task], records[task]) for task in TASKS}
    write_jsonl(files["all"], (r for task in TASKS for r in records[task]))
    return counts


def build_ddqa(root: Path, out_dir: Path, options: DdqaOptions | None = None) -> DdqaReport:
    """Scan `root`, split, and write the DDQA files into `out_dir`; return what was done.

    Raises DataError for an unusable root/output directory, a tree without usable images,
    or (with `options.strict`) the first bad file."""
    options = options or DdqaOptions()
    root, out_dir = Path(root).expanduser().absolute(), Path(out_dir).expanduser().absolute()
    if not root.is_dir():
        raise DataError(f"raw root {root} is not a directory: pass the folder that holds <Dataset>/<Sub>/NG|OK")
    check_output_dir(root, out_dir, options.force)
    problems = Problems(options.strict)
    samples = scan_tree(root, problems, progress=options.progress)
    if not samples:
        raise DataError(
            f"no usable image under {root}: all {len(problems.items)} files were skipped "
            f"({problems.counts()}); fix them or run with --strict to see the first one"
        )
    catalog = _catalog(samples)
    classes = sorted({name for names in catalog.values() for name in names})
    notes = _notes(classes)
    splits = split_samples(
        samples, options.seed, options.calibration_fraction, options.test_fraction, options.good_calibration_fraction
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    files = output_files(out_dir)
    records: dict[str, dict[str, int]] = {}
    letters: dict[str, dict[str, dict[str, int]]] = {}
    for split, members in splits.items():
        questions = questions_for_split(members, split, options.seed, catalog, len(classes))
        records[split] = _write_split(questions, files[split], out_dir, options)
        letters[split] = letter_counts(questions)
    save_split(
        out_dir / SPLIT_FILE,
        SplitIndex(
            seed=options.seed,
            fractions={
                "calibration": options.calibration_fraction,
                "test": options.test_fraction,
                **(
                    {"good_calibration": options.good_calibration_fraction}
                    if options.good_calibration_fraction is not None
                    else {}
                ),
            },
            root=str(root),
            classes=classes,
            **{split: [_entry(s) for s in splits[split]] for split in SPLITS},
        ),
    )
    report = DdqaReport.build(
        root,
        out_dir,
        options.model_dump(),
        samples,
        splits,
        classes,
        dc_option_count(len(classes)),
        records,
        letters,
        problems,
        notes,
        files,
    )
    write_json(out_dir / REPORT_FILE, report.to_dict())
    log.info("DDQA: %d images (%d skipped) -> %s", len(samples), len(problems.items), out_dir)
    return report


def _notes(classes: list[str]) -> list[str]:
    n_dc = dc_option_count(len(classes))
    if not classes:
        note = "no NG image: only AD and DD records (DC, RDL, DFM files are empty)"
    elif n_dc == 0:
        note = f"one defect class ({classes[0]}): DC is not built (Task_DC.jsonl is empty)"
    elif n_dc < 4:
        note = f"{len(classes)} defect classes: DC questions have {n_dc} options instead of 4"
    else:
        return []
    log.warning("%s", note)
    return [note]
