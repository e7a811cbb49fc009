"""Build the DDQA training files from any tree in the DDQA raw layout.

    build_ddqa(root, out_dir, DdqaOptions(seed=0)) -> DdqaReport

Steps: scan and validate the tree (ddqa_scan), split by image, stratified per
(dataset, sub, defect or OK) and seeded (`split_samples`), ask the four tasks' questions
with answers measured on the masks (ddqa_questions), write the record files
(ddqa_records), `split.json` (train.data.index, the trainer's contract) and
`report.json`. Output layout (OUTPUT_FILES) is documented in docs/ddqa.md. Nothing is
written outside `out_dir`, and nothing at all when the scan fails under `strict`.
Not thread-safe (one build per output directory).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from eiad.errors import DataError
from train.data.ddqa_questions import TASKS, Question, dc_option_count, questions_for_split
from train.data.ddqa_records import RecordFormat, image_reference, to_record, write_json, write_jsonl
from train.data.ddqa_report import DdqaReport, letter_counts
from train.data.ddqa_scan import Problems, Sample, scan_tree
from train.data.index import SPLIT_FILE, ImageEntry, SplitIndex, save_split

log = logging.getLogger(__name__)

TASK_FILES = {task: f"Task_{task}.jsonl" for task in TASKS}
VAL_DIR = "val"
ALL_TASKS_FILE = {"train": "train.jsonl", "val": "val.jsonl"}
REPORT_FILE = "report.json"


class DdqaOptions(BaseModel):
    """How to build. Validated once; does no I/O."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, description="seeds the split, the templates, the option order and the letters")
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="share of each class's images held out")
    record_format: RecordFormat = Field("query", description="'query' (swift 2.x) or 'messages' (swift 3.x)")
    relative_paths: bool = Field(False, description="image paths relative to the output directory")
    strict: bool = Field(False, description="raise DataError on the first bad file instead of skipping it")
    force: bool = Field(False, description="write into a non-empty output directory (overwrites our files only)")
    progress: bool = Field(True, description="tqdm bar while reading images and masks")


def output_files(out_dir: Path) -> dict[str, dict[str, Path]]:
    """Per split: task -> file, plus "all" -> the file holding all four tasks."""
    out_dir = Path(out_dir)
    val_dir = out_dir / VAL_DIR
    return {
        "train": {**{t: out_dir / f for t, f in TASK_FILES.items()}, "all": out_dir / ALL_TASKS_FILE["train"]},
        "val": {**{t: val_dir / f for t, f in TASK_FILES.items()}, "all": val_dir / ALL_TASKS_FILE["val"]},
    }


def val_count(n_images: int, val_fraction: float) -> int:
    """Images of one stratum held out: round(n * fraction), at least 1 and at most n - 1 when n >= 2."""
    if n_images < 2 or val_fraction <= 0:
        return 0
    return min(n_images - 1, max(1, int(n_images * val_fraction + 0.5)))


def split_samples(samples: list[Sample], seed: int, val_fraction: float) -> tuple[list[Sample], list[Sample]]:
    """Split by image, stratified per (dataset, sub, defect/OK), deterministic by seed."""
    groups: dict[tuple[str, str, str], list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[sample.group].append(sample)
    train: list[Sample] = []
    val: list[Sample] = []
    for group, members in sorted(groups.items()):
        order = sorted(members, key=lambda s: s.key)
        random.Random("|".join([str(seed), "split", *group])).shuffle(order)
        n_val = val_count(len(order), val_fraction)
        val += order[:n_val]
        train += order[n_val:]
    return sorted(train, key=lambda s: s.key), sorted(val, key=lambda s: s.key)


def check_output_dir(root: Path, out_dir: Path, force: bool) -> None:
    real_out, real_root = out_dir.resolve(), root.resolve()
    if real_out == real_root or real_out.is_relative_to(real_root):
        raise DataError(f"output directory {out_dir} is inside the raw root {root}: the next scan would "
                        "read the jsonl files as a malformed dataset; choose a directory outside the root")
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"output path {out_dir} is a file; pass a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise DataError(f"output directory {out_dir} is not empty; choose an empty one or pass --force "
                        "(which overwrites only the DDQA files, split.json and report.json)")


def _catalog(samples: list[Sample]) -> dict[tuple[str, str], list[str]]:
    names: dict[tuple[str, str], set[str]] = defaultdict(set)
    for sample in samples:
        if sample.defect is not None:
            names[(sample.dataset, sample.sub)].add(sample.defect)
    return {key: sorted(value) for key, value in sorted(names.items())}


def _entry(sample: Sample) -> ImageEntry:
    return ImageEntry(image=str(sample.image), mask=str(sample.mask) if sample.mask else None,
                      label=sample.label, defect=sample.defect, dataset=sample.dataset, sub=sample.sub)


def _write_split(questions: dict[str, list[Question]], files: dict[str, Path], out_dir: Path,
                 options: DdqaOptions) -> dict[str, int]:
    files["all"].parent.mkdir(parents=True, exist_ok=True)
    records = {task: [to_record(q, options.record_format, image_reference(q.sample.image, out_dir,
                                                                          options.relative_paths))
                      for q in questions[task]] for task in TASKS}
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
        raise DataError(f"no usable image under {root}: all {len(problems.items)} files were skipped "
                        f"({problems.counts()}); fix them or run with --strict to see the first one")
    catalog = _catalog(samples)
    classes = sorted({name for names in catalog.values() for name in names})
    notes = _notes(classes)
    splits = dict(zip(("train", "val"), split_samples(samples, options.seed, options.val_fraction)))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = output_files(out_dir)
    records: dict[str, dict[str, int]] = {}
    letters: dict[str, dict[str, dict[str, int]]] = {}
    for split, members in splits.items():
        questions = questions_for_split(members, split, options.seed, catalog, len(classes))
        records[split] = _write_split(questions, files[split], out_dir, options)
        letters[split] = letter_counts(questions)
    save_split(out_dir / SPLIT_FILE, SplitIndex(
        seed=options.seed, val_fraction=options.val_fraction, root=str(root), classes=classes,
        train=[_entry(s) for s in splits["train"]], val=[_entry(s) for s in splits["val"]]))
    report = DdqaReport.build(root, out_dir, options.model_dump(), samples, splits, classes,
                              dc_option_count(len(classes)), records, letters, problems, notes, files)
    write_json(out_dir / REPORT_FILE, report.to_dict())
    log.info("DDQA: %d images (%d skipped) -> %s", len(samples), len(problems.items), out_dir)
    return report


def _notes(classes: list[str]) -> list[str]:
    n_dc = dc_option_count(len(classes))
    if not classes:
        note = "no NG image: only AD records (DC, RDL, DFM files are empty)"
    elif n_dc == 0:
        note = f"one defect class ({classes[0]}): DC is not built (Task_DC.jsonl is empty)"
    elif n_dc < 4:
        note = f"{len(classes)} defect classes: DC questions have {n_dc} options instead of 4"
    else:
        return []
    log.warning("%s", note)
    return [note]
