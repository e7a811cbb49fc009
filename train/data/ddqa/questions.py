"""Questions and answers for the five DDQA tasks, derived from masks (and, for the
description's appearance, the image) only, never from a model.

Determinism: every random choice comes from `random.Random` seeded with a string made of
the build seed, the task and the image's root-relative path, so a record does not change
when other images are added. The correct letters are assigned round-robin over a seeded
permutation of the images of one (task, split): per file, the count of each letter
differs by at most 1. Pure functions; thread-safe.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from eiad.description.facts import DefectFacts, measure_defect
from eiad.description.sentences import describe_defect, describe_good
from eiad.errors import DataError
from train.data.ddqa.masks import QUADRANTS, decode
from train.data.ddqa.scan import Sample

TASKS = ("AD", "DC", "RDL", "DFM", "DD")
TASK_NAMES = {
    "AD": "Anomaly Discrimination",
    "DC": "Defect Classification",
    "RDL": "Rough Defect Localization",
    "DFM": "Defect Fine Mapping",
    "DD": "Defect Description",
}
CHOICE_TASKS = ("AD", "DC", "RDL")  # answered with an option letter
LETTERS = "ABCD"
MAX_DC_OPTIONS = 4

_AD = (
    "Is there any visible defect on the object in this image?",
    "Does this part show a defect?",
    "Look at the surface in the picture. Is anything defective?",
    "Inspect this image: is the product flawed in any way?",
)
_DC = (
    "What kind of defect does this part have?",
    "Which type of defect can you see in this image?",
    "Classify the defect shown on the object.",
    "The object in the picture is defective. Which defect type is it?",
)
_RDL = (
    "Where in the image is the defect located?",
    "In which part of the picture does most of the defect lie?",
    "Which region of the image holds the defect?",
    "Locate the defect roughly: which quarter of the image is it in?",
)
_DFM = (
    "Find the defect in this image and give its bounding box as [x1, y1, x2, y2], "
    "with coordinates normalised to 0..1 and 3 decimals.",
    "Where exactly is the defect? Answer with its bounding box [x1, y1, x2, y2] in "
    "normalised image coordinates (0..1, 3 decimals).",
    "Mark the defective area with a box: reply [x1, y1, x2, y2], each value between 0 "
    "and 1 with 3 decimals, x to the right and y downwards from the top-left corner.",
)
_DD = (
    "Describe the defect in this image: what it is, where it is, how big it is, its shape and how it looks.",
    "What is wrong with this part? Say what the defect is, where, how large, its shape and its appearance.",
    "Inspect the part and describe any defect: its type, location, size, shape and appearance.",
    "Describe what you see on this part. If it is defective, give the defect's type, place, size, shape and look.",
)
_LETTER_LINES = (
    "Answer with the option's letter from the given choices directly.",
    "Reply with the letter of the correct option only.",
    "Give only the letter of your chosen option.",
)


@dataclass(frozen=True)
class Question:
    """One question about one image. `prompt` excludes the `<image>` tag."""

    task: str
    sample: Sample
    prompt: str
    answer: str  # a letter, or the box text for DFM
    options: tuple[str, ...]  # empty for DFM


def _rng(seed: int, *parts: str) -> random.Random:
    return random.Random("|".join([str(seed), *parts]))


def assign_letters(samples: list[Sample], n_options: int, seed: int, task: str, split: str) -> dict[str, int]:
    """Correct-option index per sample key: round-robin over a seeded permutation."""
    keys = sorted(s.key for s in samples)
    _rng(seed, "letters", task, split).shuffle(keys)
    return {key: i % n_options for i, key in enumerate(keys)}


def multiple_choice(question: str, options: list[str], rng: random.Random) -> str:
    lines = [question] + [f"{LETTERS[i]}. {text}" for i, text in enumerate(options)]
    return "\n".join(lines + [rng.choice(_LETTER_LINES)])


def _place(correct: str, others: list[str], index: int) -> list[str]:
    return others[:index] + [correct] + others[index:]


def ad_question(sample: Sample, letter_index: int, seed: int) -> Question:
    rng = _rng(seed, "AD", sample.key)
    correct, other = ("Yes", "No") if sample.label == "NG" else ("No", "Yes")
    options = _place(correct, [other], letter_index)
    prompt = multiple_choice(rng.choice(_AD), options, rng)
    return Question("AD", sample, prompt, LETTERS[letter_index], tuple(options))


def distractors(sample: Sample, catalog: dict[tuple[str, str], list[str]], count: int, rng: random.Random) -> list[str]:
    """`count` other defect names: same (dataset, sub) first, then same dataset, then any."""
    tiers: list[set[str]] = [set(), set(), set()]
    for (dataset, sub), names in catalog.items():
        tier = 0 if (dataset, sub) == (sample.dataset, sample.sub) else 1 if dataset == sample.dataset else 2
        tiers[tier].update(names)
    chosen: list[str] = []
    for tier in tiers:
        pool = sorted(tier - set(chosen) - {sample.defect})
        rng.shuffle(pool)
        chosen += pool[: count - len(chosen)]
    rng.shuffle(chosen)  # the tier order must not leak into the option order
    return chosen


def dc_question(
    sample: Sample, letter_index: int, seed: int, catalog: dict[tuple[str, str], list[str]], n_options: int
) -> Question:
    rng = _rng(seed, "DC", sample.key)
    others = distractors(sample, catalog, n_options - 1, rng)
    options = _place(sample.defect or "", others, letter_index)
    prompt = multiple_choice(rng.choice(_DC), options, rng)
    return Question("DC", sample, prompt, LETTERS[letter_index], tuple(options))


def rdl_question(sample: Sample, letter_index: int, seed: int) -> Question:
    rng = _rng(seed, "RDL", sample.key)
    correct = sample.stats.quadrant
    others = [q for q in QUADRANTS if q != correct]
    rng.shuffle(others)
    options = _place(correct, others, letter_index)
    prompt = multiple_choice(rng.choice(_RDL), options, rng)
    return Question("RDL", sample, prompt, LETTERS[letter_index], tuple(options))


def format_box(box: tuple[float, float, float, float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in box) + "]"


def dfm_question(sample: Sample, seed: int) -> Question:
    rng = _rng(seed, "DFM", sample.key)
    return Question("DFM", sample, rng.choice(_DFM), format_box(sample.stats.box), ())


def sample_facts(sample: Sample) -> DefectFacts | None:
    """The facts of an NG sample's mask and image (docs/ddqa.md, "Defect description"); None for OK."""
    if sample.label != "NG":
        return None
    mask, why = decode(sample.mask, grayscale=True)
    image, image_why = decode(sample.image, grayscale=True)  # 8-bit grey whatever the file's depth
    if mask is None or image is None:
        raise DataError(f"{sample.key}: cannot read {'mask' if mask is None else 'image'} again ({why or image_why})")
    facts = measure_defect(mask, image)
    if facts is None:
        raise DataError(f"{sample.key}: its mask has no defect pixel")
    return facts


def dd_question(sample: Sample, seed: int) -> Question:
    """The description task: one sentence of measured facts (NG) or the good-part sentence (OK)."""
    rng = _rng(seed, "DD", sample.key)
    prompt = rng.choice(_DD)
    facts = sample_facts(sample)
    answer = describe_defect(facts, sample.defect, rng) if facts is not None else describe_good(rng)
    return Question("DD", sample, prompt, answer, ())


def dc_option_count(n_classes: int) -> int:
    """Options per DC question: min(4, classes); 0 means DC is not built (fewer than 2 classes)."""
    return min(MAX_DC_OPTIONS, n_classes) if n_classes >= 2 else 0


def questions_for_split(
    samples: list[Sample], split: str, seed: int, catalog: dict[tuple[str, str], list[str]], n_classes: int
) -> dict[str, list[Question]]:
    """All questions of one split, per task, in image-key order."""
    ng = [s for s in samples if s.label == "NG"]
    ad_letters = assign_letters(samples, 2, seed, "AD", split)
    out: dict[str, list[Question]] = {task: [] for task in TASKS}
    out["AD"] = [ad_question(s, ad_letters[s.key], seed) for s in samples]
    n_dc = dc_option_count(n_classes)
    if n_dc:
        dc_letters = assign_letters(ng, n_dc, seed, "DC", split)
        out["DC"] = [dc_question(s, dc_letters[s.key], seed, catalog, n_dc) for s in ng]
    rdl_letters = assign_letters(ng, len(QUADRANTS), seed, "RDL", split)
    out["RDL"] = [rdl_question(s, rdl_letters[s.key], seed) for s in ng]
    out["DFM"] = [dfm_question(s, seed) for s in ng]
    out["DD"] = [dd_question(s, seed) for s in samples]
    return out
