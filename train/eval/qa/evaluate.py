"""DDQA question answering accuracy: run a chat model over DDQA records and score its replies.

Per task:
- AD, DC, RDL (multiple choice): the reply is turned into a letter with
  `train.eval.answer_parsing.parse_answer` (rule first/last, optional option-text
  fallback); correct = that letter equals the reference letter. A reply without a letter
  is counted as unparseable and wrong.
- DFM (box): the first `[x1, y1, x2, y2]` in the reply (brackets or parentheses, numbers
  normalised to 0..1 with x1 < x2, y1 < y2) is compared with the reference box by IoU.
  A reply without such a box is counted as unparseable with IoU 0. Reported: mean IoU
  and the share of records with IoU >= 0.5 (`correct` counts those).
- DD (description): the reply's claims (eiad/description/check.py) must match the
  reference sentence's: no-defect or not, class and location; size, shape and appearance
  when the reply states them. A reply that claims nothing is unparseable.

The task of a record comes from its file (`Task_AD.jsonl` ...) or, in a mixed file such
as `val/val.jsonl`, from the record itself (a box answer = DFM; options Yes/No = AD;
options that are image quadrants = RDL; other options = DC; no options = DD).

The scoring functions are pure and thread-safe; `run_qa_eval` drives any object with
`generate(images, prompts, max_new_tokens) -> list[str]` (an `EiadBackbone`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from eiad.dialog_records import DialogRecord, read_ddqa
from eiad.errors import DataError, ModelError
from train.data.ddqa.questions import TASK_NAMES, TASKS
from train.eval.answer_parsing import LETTERS, Rule, parse_answer

log = logging.getLogger(__name__)

IOU_HIT = 0.5
QUADRANTS = frozenset({"top left", "top right", "bottom left", "bottom right"})
_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_BOX = re.compile(r"[\[(]\s*" + r"\s*,\s*".join([_NUM] * 4) + r"\s*[\])]")
_OPTION_LINE = re.compile(r"^\s*([A-E])\.\s+(.+?)\s*$", re.MULTILINE)
_TASK_FILE = re.compile(r"^Task_(AD|DC|RDL|DFM|DD)$")
# Reported boxes may be rounded to 3 decimals: allow that much outside 0..1.
_BOX_TOLERANCE = 1e-3

Box = tuple[float, float, float, float]


class ChatModel(Protocol):
    def generate(self, images: list, prompts: list[str], max_new_tokens: int = 64) -> list[str]: ...


@dataclass(frozen=True)
class QaItem:
    """One DDQA record with its task (AD, DC, RDL, DFM or DD)."""

    task: str
    record: DialogRecord


@dataclass(frozen=True)
class QaOutcome:
    """The scored reply to one record. `parsed` is the letter or the box as text, None if unparseable."""

    where: str
    task: str
    reference: str
    reply: str
    parsed: str | None
    correct: bool
    iou: float | None = None


@dataclass(frozen=True)
class TaskScore:
    """Counts for one task; `accuracy` in 0..1 (DFM: share with IoU >= 0.5), None without records."""

    task: str
    records: int
    correct: int
    unparseable: int
    mean_iou: float | None = None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.records if self.records else None


@dataclass(frozen=True)
class QaReport:
    tasks: dict[str, TaskScore]
    outcomes: tuple[QaOutcome, ...]
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        tasks = {}
        for name, s in self.tasks.items():
            row = {
                "name": TASK_NAMES[name],
                "records": s.records,
                "correct": s.correct,
                "unparseable": s.unparseable,
                "accuracy": s.accuracy,
            }
            if name == "DFM":
                row |= {"mean_iou": s.mean_iou, "iou_at_0_5": s.accuracy}
            tasks[name] = row
        return {"meta": self.meta, "tasks": tasks, "records": [asdict(o) for o in self.outcomes]}


def parse_box(reply: str) -> Box | None:
    """The first valid normalised box `[x1, y1, x2, y2]` in a reply, or None."""
    for match in _BOX.finditer(reply or ""):
        x1, y1, x2, y2 = (float(v) for v in match.groups())
        inside = all(-_BOX_TOLERANCE <= v <= 1 + _BOX_TOLERANCE for v in (x1, y1, x2, y2))
        if inside and x1 < x2 and y1 < y2:
            return x1, y1, x2, y2
    return None


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2); 0 when either is empty."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def parse_options(question: str) -> dict[str, str]:
    """Option letters to texts from the question's "A. text" lines."""
    return {m.group(1): m.group(2) for m in _OPTION_LINE.finditer(question)}


def infer_task(record: DialogRecord) -> str:
    """AD, DC, RDL, DFM or DD for a record of a mixed file (see the module docstring)."""
    if parse_box(record.answer) is not None:
        return "DFM"
    options = {v.strip().lower() for v in parse_options(record.question).values()}
    if not options:
        return "DD"  # neither a box nor options: a free-form description
    if options == {"yes", "no"}:
        return "AD"
    return "RDL" if options <= QUADRANTS else "DC"


def load_qa_items(source: Path, split: str = "test", max_per_task: int | None = None) -> list[QaItem]:
    """Records of a DDQA build folder (its `split`: train, calibration or test) or of one jsonl file."""
    source = Path(source)
    if source.is_dir():
        folder = source if split == "train" else source / split
        items: list[QaItem] = []
        for task in TASKS:
            path = folder / f"Task_{task}.jsonl"
            if task == "DD" and not path.is_file():
                log.warning("%s: missing (a build older than the description task); DD not evaluated", path)
                continue
            if not path.is_file():
                raise DataError(
                    f"{path}: missing; {source} is not a DDQA build (run `eiad data ddqa ROOT --out "
                    f"{source}`) or pass one .jsonl file"
                )
            if path.read_text(encoding="utf-8").strip():  # a task with nothing to ask is an empty file
                items += [QaItem(task, r) for r in read_ddqa(path)[:max_per_task]]
        if not items:
            raise DataError(f"{folder}: every Task_*.jsonl is empty; nothing to evaluate")
        return items
    if not source.is_file():
        raise DataError(f"{source}: not found; pass a DDQA build folder or a .jsonl file")
    named = _TASK_FILE.match(source.stem)
    items = [QaItem(named.group(1) if named else infer_task(r), r) for r in read_ddqa(source)]
    if max_per_task is None:
        return items
    kept, seen = [], dict.fromkeys(TASKS, 0)
    for item in items:
        if seen[item.task] < max_per_task:
            seen[item.task] += 1
            kept.append(item)
    return kept


def score_reply(item: QaItem, reply: str, rule: Rule = "first", fallback_to_option_text: bool = False) -> QaOutcome:
    """Score one reply against the record's reference answer."""
    record = item.record
    reference = record.answer.strip()
    if item.task == "DFM":
        truth = parse_box(reference)
        if truth is None:
            raise DataError(f"{record.where}: DFM reference answer {reference!r} is not a box [x1, y1, x2, y2] in 0..1")
        box = parse_box(reply)
        iou = box_iou(box, truth) if box is not None else 0.0
        parsed = None if box is None else "[" + ", ".join(f"{v:.3f}" for v in box) + "]"
        return QaOutcome(record.where, item.task, reference, reply, parsed, iou >= IOU_HIT, iou)
    if item.task == "DD":
        return _score_description(item, reply)
    if reference not in LETTERS:
        raise DataError(f"{record.where}: {item.task} reference answer {reference!r} is not one letter A-E")
    letter = parse_answer(reply, parse_options(record.question), rule, fallback_to_option_text)
    return QaOutcome(record.where, item.task, reference, reply, letter, letter == reference)


def _score_description(item: QaItem, reply: str) -> QaOutcome:
    """DD: the reply must say what the reference says about the verdict, the class and the
    location (eiad/description/check.py reads both); shape, size and appearance, when the
    reply states them, must match too. `parsed` lists the reply's claims (None: it made none)."""
    from eiad.description.check import read_claims

    record = item.record
    # The class names are the DDQA layout's NG folders (.../NG/<class>/image/<file>).
    folder = record.image.parent.parent
    names = [folder.name] if folder.parent.name == "NG" else []
    ref, got = read_claims(record.answer, names), read_claims(reply, names)
    stated = [
        (got.sizes, ref.sizes),
        (got.shapes, ref.shapes),
        (got.appearances, ref.appearances),
    ]
    correct = (
        got.no_defect == ref.no_defect
        and got.classes == ref.classes
        and got.locations == ref.locations
        and all(not said or said == truth for said, truth in stated)
    )
    said = sorted(got.classes | got.locations | got.sizes | got.shapes | got.appearances)
    parsed = ", ".join(["no defect"] * got.no_defect + said) or None
    return QaOutcome(record.where, item.task, record.answer.strip(), reply, parsed, correct)


def summarize(outcomes: Sequence[QaOutcome]) -> dict[str, TaskScore]:
    """Per-task counts, in TASKS order, for the tasks present."""
    scores = {}
    for task in TASKS:
        rows = [o for o in outcomes if o.task == task]
        if not rows:
            continue
        mean_iou = sum(o.iou or 0.0 for o in rows) / len(rows) if task == "DFM" else None
        scores[task] = TaskScore(
            task, len(rows), sum(o.correct for o in rows), sum(o.parsed is None for o in rows), mean_iou
        )
    return scores


def run_qa_eval(
    model: ChatModel,
    items: Sequence[QaItem],
    *,
    rule: Rule = "first",
    fallback_to_option_text: bool = False,
    max_new_tokens: int = 32,
    batch_size: int = 1,
    meta: dict | None = None,
    progress: bool = True,
) -> QaReport:
    """Ask `model` every item's question about its image and score the replies."""
    from tqdm.auto import tqdm

    outcomes: list[QaOutcome] = []
    with tqdm(total=len(items), desc="DDQA eval", unit="q", disable=not progress) as bar:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            replies = model.generate(
                [i.record.load_image() for i in chunk],
                [i.record.question for i in chunk],
                max_new_tokens=max_new_tokens,
            )
            if len(replies) != len(chunk):
                raise ModelError(f"model returned {len(replies)} replies for {len(chunk)} questions")
            outcomes += [score_reply(i, r, rule, fallback_to_option_text) for i, r in zip(chunk, replies)]
            bar.update(len(chunk))
    return QaReport(summarize(outcomes), tuple(outcomes), dict(meta or {}))


def format_qa_table(report: QaReport) -> str:
    """A per-task table: records, correct, accuracy (%), unparseable, DFM mean IoU."""
    head = ("task", "name", "records", "correct", "acc %", "unparsed", "mean IoU")
    lines = ["{:6s} {:28s} {:>8s} {:>8s} {:>7s} {:>9s} {:>9s}".format(*head)]
    for name, s in report.tasks.items():
        acc = "-" if s.accuracy is None else f"{100 * s.accuracy:.1f}"
        iou = "-" if s.mean_iou is None else f"{s.mean_iou:.3f}"
        lines.append(
            f"{name:6s} {TASK_NAMES[name]:28s} {s.records:8d} {s.correct:8d} {acc:>7s} {s.unparseable:9d} {iou:>9s}"
        )
    lines.append(
        f"(DFM: correct = IoU >= {IOU_HIT}; DD: correct = same verdict, class and location as the reference, "
        "and any size/shape/look it states; unparseable replies count as wrong, IoU 0)"
    )
    return "\n".join(lines)


def load_eval_model(model: str, adapter: Path | None = None, device: str = "cpu", vision_from: Path | None = None):
    """An `EiadBackbone` for evaluation: a preset or folder, optionally with a peft LoRA adapter
    merged in and the vision tower of the localization checkpoint the adapter was trained on."""
    from eiad.modeling.backbone.loading import load_backbone

    backbone = load_backbone(model, device=device)
    if vision_from is not None:
        from eiad.modeling.checkpoint import apply_vision_state, load_checkpoint

        apply_vision_state(backbone, load_checkpoint(Path(vision_from)))
    if adapter is not None:
        adapter = Path(adapter)
        if not (adapter / "adapter_config.json").is_file():
            raise ModelError(f"{adapter}: no adapter_config.json; pass the adapter/ folder 'eiad train' wrote")
        from peft import PeftModel

        # Merged into the weights so every backbone path (generate, vision) sees plain modules.
        backbone.hf_model = PeftModel.from_pretrained(backbone.hf_model, str(adapter)).merge_and_unload().eval()
        log.info("merged LoRA adapter %s into %s", adapter, model)
    return backbone
