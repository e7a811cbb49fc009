"""MMAD scoring: answers file -> the accuracy table of MMAD's published result CSVs.

MMAD (arXiv 2410.09453, github jam-cc/MMAD) scores a list of records
`{"image", "question", "question_type", "correct_answer", "gpt_answer"}`:

- dataset = first path component of "image"; rows in order of first appearance, then
  an "Average" row = unweighted mean over the dataset rows (cells without data skipped);
- "Object Structure" and "Object Details" are one task, "Object Analysis";
- a record whose correct or given answer is not exactly one of "A".."E" is dropped
  (`strict=True`: kept and counted wrong instead);
- cell = accuracy in percent; "Anomaly Detection" is balanced accuracy: (accuracy on
  AD questions of images whose path contains `normal_flag` + accuracy on the others)/2;
- "Average" = mean of the 7 task cells that have data; "Recall" = accuracy on
  anomalous images' AD questions, "Precision" = anomalous-correct / (anomalous-correct
  + normal-wrong), "F1" = 2PR/(P+R) (these three appear in MMAD's published CSVs);
  "Overkill" = 100 - normal accuracy, "Miss" = 100 - anomalous accuracy.

Where we differ from MMAD's script (helper/summary.py), on purpose, each only when data
is missing (docs/mmad.md): a task a dataset has no records for is empty, not 0, and
stays out of that row's Average; AD with only one side (no normal or no anomalous AD
records) is the accuracy of the side that exists, flagged in `MmadScore.notes`, where
MMAD's script averages it with a 0; Overkill/Miss/Recall without their side are empty.
Arithmetic follows MMAD's order of operations so the numbers diff bit-for-bit.

Pure functions over in-memory records; `load_answers`/`write_score_csv` do the I/O.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from eiad.errors import DataError

log = logging.getLogger(__name__)

LETTERS = frozenset("ABCDE")
TASKS = (
    "Anomaly Detection",
    "Defect Classification",
    "Defect Localization",
    "Defect Description",
    "Defect Analysis",
    "Object Classification",
    "Object Analysis",
)
MERGED_TYPES = {"Object Structure": "Object Analysis", "Object Details": "Object Analysis"}
COLUMNS = TASKS + ("Average", "Recall", "Precision", "F1", "Overkill", "Miss")
AVERAGE_ROW = "Average"
REQUIRED_KEYS = ("image", "question_type", "correct_answer", "gpt_answer")


@dataclass(frozen=True)
class Tally:
    """Correct answers out of scored answers."""

    correct: int = 0
    total: int = 0

    def add(self, is_correct: bool) -> Tally:
        return Tally(self.correct + int(is_correct), self.total + 1)

    @property
    def fraction(self) -> float | None:
        return self.correct / self.total if self.total else None


@dataclass(frozen=True)
class DatasetScore:
    """Counts and table cells (percent, None = no data) for one dataset."""

    name: str
    tasks: dict[str, Tally]
    normal: Tally
    anomalous: Tally
    cells: dict[str, float | None]


@dataclass(frozen=True)
class MmadScore:
    """The MMAD table plus the counts behind it.

    `rows` maps row name (datasets in order of first appearance, then "Average") to
    {column: percent or None}; `dropped_*` count records left out (0 when strict);
    `unparseable` counts records with a non-letter answer (dropped, or wrong if strict).
    """

    datasets: tuple[DatasetScore, ...]
    rows: dict[str, dict[str, float | None]]
    scored: int
    unparseable: int
    dropped_bad_answer: int
    dropped_bad_correct: int
    strict: bool
    normal_flag: str
    notes: tuple[str, ...] = field(default=())

    @property
    def dropped(self) -> int:
        return self.dropped_bad_answer + self.dropped_bad_correct

    @property
    def headline(self) -> float | None:
        """The benchmark's single number: the Average row's Average column."""
        return self.rows[AVERAGE_ROW]["Average"] if self.rows else None


def load_answers(path: str | Path) -> list[dict]:
    """Read an MMAD answers file (JSON list of records); DataError names file and index."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the answers file ({error})") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}: not valid JSON at line {error.lineno} column {error.colno} ({error.msg}); "
            "an MMAD answers file is a JSON list of records"
        ) from error
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of answer records, found {type(data).__name__}")
    for index, record in enumerate(data):
        _check_record(record, f"{path}: record {index}")
    return data


def _check_record(record: object, where: str) -> None:
    if not isinstance(record, dict):
        raise DataError(
            f"{where}: expected an object with keys {', '.join(REQUIRED_KEYS)}, found {type(record).__name__}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}; each record needs {', '.join(REQUIRED_KEYS)}")
    image = record["image"]
    if not isinstance(image, str) or not image.split("/")[0]:
        raise DataError(f"{where}: 'image' must be a relative path like 'VisA/candle/...', found {image!r}")
    qtype = MERGED_TYPES.get(record["question_type"], record["question_type"])
    if qtype not in TASKS:
        known = ", ".join(TASKS[:-1] + tuple(MERGED_TYPES))
        raise DataError(f"{where}: unknown question_type {record['question_type']!r}; MMAD's types are {known}")


def score_answers(records: list[dict], normal_flag: str = "good", strict: bool = False) -> MmadScore:
    """Score MMAD answer records (see the module docstring for every rule)."""
    if not normal_flag:
        raise DataError("normal flag must not be empty: every image path would count as normal")
    tasks: dict[str, dict[str, Tally]] = {}
    sides: dict[str, dict[str, Tally]] = {}
    unparseable = bad_answer = bad_correct = scored = 0
    for index, record in enumerate(records):
        _check_record(record, f"record {index}")
        dataset = record["image"].split("/")[0]
        tasks.setdefault(dataset, {})
        sides.setdefault(dataset, {"normal": Tally(), "anomalous": Tally()})
        correct, given = record["correct_answer"], record["gpt_answer"]
        valid_correct, valid_given = _is_letter(correct), _is_letter(given)
        if not (valid_correct and valid_given):
            unparseable += 1
            if not strict:
                bad_correct += int(not valid_correct)
                bad_answer += int(valid_correct)
                continue
        scored += 1
        hit = valid_correct and valid_given and correct == given
        qtype = MERGED_TYPES.get(record["question_type"], record["question_type"])
        tasks[dataset][qtype] = tasks[dataset].get(qtype, Tally()).add(hit)
        if qtype == "Anomaly Detection":
            side = "normal" if normal_flag in record["image"] else "anomalous"
            sides[dataset][side] = sides[dataset][side].add(hit)
    datasets, notes = [], []
    for name in tasks:
        cells, note = _dataset_cells(name, tasks[name], sides[name]["normal"], sides[name]["anomalous"])
        datasets.append(DatasetScore(name, tasks[name], sides[name]["normal"], sides[name]["anomalous"], cells))
        notes.extend(note)
    rows = {d.name: d.cells for d in datasets}
    if datasets:
        rows[AVERAGE_ROW] = {c: _mean([d.cells[c] for d in datasets]) for c in COLUMNS}
    if unparseable:
        what = "counted wrong (strict)" if strict else "dropped"
        log.warning(
            "%d of %d records have a correct or given answer that is not one letter A-E: %s",
            unparseable,
            len(records),
            what,
        )
    return MmadScore(
        tuple(datasets), rows, scored, unparseable, bad_answer, bad_correct, strict, normal_flag, tuple(notes)
    )


def _is_letter(value: object) -> bool:
    return isinstance(value, str) and value in LETTERS


def _percent(tally: Tally) -> float | None:
    # MMAD computes correct / total first, then * 100: same order, same bits.
    fraction = tally.fraction
    return None if fraction is None else fraction * 100


def _dataset_cells(name: str, tasks: dict[str, Tally], normal: Tally, anomalous: Tally) -> tuple[dict, list[str]]:
    cells: dict[str, float | None] = {task: _percent(tasks[task]) if task in tasks else None for task in TASKS}
    notes = []
    n_acc, a_acc = normal.fraction, anomalous.fraction
    if n_acc is not None and a_acc is not None:
        cells["Anomaly Detection"] = (n_acc + a_acc) / 2 * 100
    elif n_acc is not None or a_acc is not None:
        missing = "normal" if n_acc is None else "anomalous"
        notes.append(
            f"{name}: no {missing} images in Anomaly Detection; its cell is the accuracy "
            f"on the other side only (MMAD's script would average it with 0)"
        )
    missing_tasks = [task for task in TASKS if cells[task] is None]
    if missing_tasks:
        notes.append(f"{name}: no records for {', '.join(missing_tasks)}; left empty and out of its Average")
    cells["Average"] = _mean([cells[task] for task in TASKS])
    recall = None if a_acc is None else a_acc * 100
    false_alarms = normal.total - normal.correct
    precision = None
    if anomalous.total:  # without anomalous images precision means nothing
        flagged = anomalous.correct + false_alarms
        precision = anomalous.correct / flagged * 100 if flagged else 0.0
    f1 = None
    if recall is not None and precision is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    cells.update(
        Recall=recall,
        Precision=precision,
        F1=f1,
        Overkill=None if n_acc is None else (1 - n_acc) * 100,
        Miss=None if a_acc is None else (1 - a_acc) * 100,
    )
    return cells, notes


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    # Left-to-right sum then divide, as pandas/numpy do for fewer than 8 values
    # (Python 3.12's sum() compensates and could differ in the last bit).
    total = 0.0
    for value in present:
        total += value
    return total / len(present)


def write_score_csv(score: MmadScore, path: str | Path) -> Path:
    """Write the table in MMAD's published CSV layout: blank first header cell, full
    float precision (Python repr, like pandas), empty cell for no data, '\\n' lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["", *COLUMNS])
        for name, cells in score.rows.items():
            writer.writerow([name, *("" if cells[c] is None else repr(cells[c]) for c in COLUMNS)])
    log.info("wrote %s", path)
    return path


def format_score_table(score: MmadScore) -> str:
    """A fixed-width text table (one decimal) with the counts and notes under it."""
    short = {
        "Anomaly Detection": "AD",
        "Defect Classification": "DC",
        "Defect Localization": "DL",
        "Defect Description": "DD",
        "Defect Analysis": "DA",
        "Object Classification": "OC",
        "Object Analysis": "OA",
    }
    heads = [short.get(c, c) for c in COLUMNS]
    width = max([len("dataset")] + [len(name) for name in score.rows])
    lines = [f"{'dataset':<{width}} " + " ".join(f"{h:>9}" for h in heads)]
    for name, cells in score.rows.items():
        values = ("-" if cells[c] is None else f"{cells[c]:.1f}" for c in COLUMNS)
        lines.append(f"{name:<{width}} " + " ".join(f"{v:>9}" for v in values))
    legend = ", ".join(f"{s} = {c}" for c, s in short.items())
    lines.append(f"({legend}; all in percent)")
    handling = "counted wrong (--strict)" if score.strict else "dropped"
    lines.append(
        f"records scored: {score.scored}; answers not one letter A-E: {score.unparseable} ({handling}"
        + ("" if score.strict else f": {score.dropped_bad_answer} given, {score.dropped_bad_correct} correct")
        + f"); normal images: path contains {score.normal_flag!r}"
    )
    lines.extend(f"note: {note}" for note in score.notes)
    return "\n".join(lines)
