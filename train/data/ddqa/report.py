"""What a DDQA build did: counts, balance, skipped files; `report.json` and the summary table."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from train.data.ddqa.questions import CHOICE_TASKS, LETTERS, TASKS, Question
from train.data.ddqa.scan import Problems, Sample, Skipped


def letter_counts(questions: dict[str, list[Question]]) -> dict[str, dict[str, int]]:
    """Per multiple-choice task: correct letter -> records."""
    return {
        task: dict(sorted(Counter(q.answer for q in qs).items()))
        for task, qs in questions.items()
        if task in CHOICE_TASKS
    }


def class_balance(samples: list[Sample]) -> dict[str, int]:
    """Images per class ("OK" for normal images)."""
    return dict(sorted(Counter(s.defect or "OK" for s in samples).items()))


@dataclass(frozen=True)
class DdqaReport:
    """The outcome of `build_ddqa`; `to_dict()` is what report.json holds."""

    root: str
    out_dir: str
    options: dict
    images_used: int
    classes: list[str]
    dc_options: int  # 0: DC not built (fewer than 2 classes)
    records: dict[str, dict[str, int]]  # split -> task -> records
    class_balance: dict[str, dict[str, int]]  # split -> class -> images
    letter_balance: dict[str, dict[str, dict[str, int]]]  # split -> task -> letter -> records
    multi_region_images: int  # NG images whose mask holds several disjoint defects
    skipped_counts: dict[str, int]
    skipped: list[Skipped] = field(default_factory=list)
    ignored: list[Skipped] = field(default_factory=list)  # root-level entries that are not datasets
    notes: list[str] = field(default_factory=list)
    files: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        root: Path,
        out_dir: Path,
        options: dict,
        samples: list[Sample],
        splits: dict[str, list[Sample]],
        classes: list[str],
        dc_options: int,
        records: dict[str, dict[str, int]],
        letters: dict[str, dict[str, dict[str, int]]],
        problems: Problems,
        notes: list[str],
        files: dict[str, dict[str, Path]],
    ) -> DdqaReport:
        return cls(
            root=str(root),
            out_dir=str(out_dir),
            options=options,
            images_used=len(samples),
            classes=classes,
            dc_options=dc_options,
            records=records,
            class_balance={split: class_balance(members) for split, members in splits.items()},
            letter_balance=letters,
            multi_region_images=sum(1 for s in samples if s.stats is not None and s.stats.regions > 1),
            skipped_counts=problems.counts(),
            skipped=list(problems.items),
            ignored=list(problems.ignored),
            notes=notes,
            files={split: {k: str(p) for k, p in named.items()} for split, named in files.items()},
        )

    @property
    def skipped_total(self) -> int:
        return len(self.skipped)

    def to_dict(self) -> dict:
        return asdict(self)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row):
        return "  ".join(
            str(cell).rjust(w) if i else str(cell).ljust(w)  # noqa: E731
            for i, (cell, w) in enumerate(zip(row, widths))
        )

    return [line(header), line(["-" * w for w in widths]), *[line(r) for r in rows]]


def format_summary(report: DdqaReport) -> str:
    """Tables for the terminal: records per task and split, class balance, letter balance, skips."""
    splits = list(report.records)
    out = [f"DDQA build: {report.images_used} images from {report.root} -> {report.out_dir}", ""]
    rows = [[task] + [str(report.records[s][task]) for s in splits] for task in TASKS]
    rows.append(["all"] + [str(sum(report.records[s].values())) for s in splits])
    out += ["records"] + _table(["task", *splits], rows) + [""]
    names = sorted({c for s in splits for c in report.class_balance[s]})
    rows = [[name] + [str(report.class_balance[s].get(name, 0)) for s in splits] for name in names]
    out += ["images per class"] + _table(["class", *splits], rows) + [""]
    header = ["task/split", *LETTERS]
    rows = [
        [f"{task}/{s}"] + [str(report.letter_balance[s].get(task, {}).get(letter, 0)) for letter in LETTERS]
        for task in CHOICE_TASKS
        for s in splits
    ]
    out += ["correct letter balance"] + _table(header, rows) + [""]
    out += [f"note: {note}" for note in report.notes]
    if report.multi_region_images:
        out.append(
            f"note: {report.multi_region_images} NG images hold several disjoint defects "
            "(DFM box = their union; RDL = quadrant with most defect area)"
        )
    out += [f"ignored: {Path(item.path).name} ({item.message})" for item in report.ignored]
    if report.skipped_counts:
        out += ["skipped files (details in report.json)"]
        out += _table(["reason", "files"], [[r, str(n)] for r, n in report.skipped_counts.items()])
    else:
        out.append("skipped files: none")
    return "\n".join(out)
