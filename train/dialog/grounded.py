"""Dialog records that ask what the edge asks: the grounded prompt built from the trained
localization module's own output on an image, answered with the description of those facts.

At the edge the explainer gets the published verdict, class, score and mask, measures the
mask and the frame (eiad/description/facts.py) and asks the grounded question
(eiad/grounding.py). Training on prompts built from ground truth only would teach the
model facts the edge never gives it; these records use the module's predictions on the
split's images, decided the way the station decides (the checkpoint's calibrated image,
pixel and class-confidence thresholds), so the model learns to say what the prompt says.
The answer is the description sentence of the same facts (eiad/description/sentences.py):
what the consistency checker reads back at the edge.

Counterfactual records (`counterfactual_cases`): the same image with another class and
location in the prompt, answered with those. A model that can tell the class from the
image alone would otherwise learn to ignore the prompt; at the edge the prompt is what
the PLC acted on, and the explanation must follow it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eiad.description.facts import LOCATIONS, DefectFacts, measure_defect
from eiad.description.sentences import describe_defect, describe_good
from eiad.dialog_records import DialogRecord
from eiad.errors import ModelError
from eiad.grounding import grounded_prompt

log = logging.getLogger(__name__)

UNKNOWN_CLASS = "unknown"  # what the station publishes below the class-confidence cut-off


@dataclass(frozen=True)
class GroundedCase:
    """One image as the station would judge it, and what the explainer is asked about it."""

    image: Path
    verdict: str  # "NG" or "OK"
    defect_class: str | None  # the published class ("unknown" below the cut-off); None for OK
    score: float
    facts: DefectFacts | None  # measured on the predicted mask and the image; None: OK or no pixel
    prompt: str


def decide(score: float, anomaly: np.ndarray, probs: np.ndarray, thresholds: dict, class_names: Sequence[str]):
    """The station's rules for one image without per-class overrides (edge/verdict.py, rules
    2-4): (verdict, published class, mask). A minimum defect area is applied to the whole mask."""
    mask = anomaly >= thresholds["pixel"]
    min_area = int(thresholds.get("min_defect_area_px") or 0)
    defective = score >= thresholds["image_score"] and (min_area == 0 or int(mask.sum()) >= min_area)
    if not defective:
        return "OK", None, np.zeros_like(mask)
    best = int(np.argmax(probs))
    sure = bool(class_names) and float(probs[best]) >= float(thresholds.get("class_confidence") or 0.0)
    return "NG", class_names[best] if sure else UNKNOWN_CLASS, mask


def grounded_cases(checkpoint: Path, split_path: Path, which: str = "train", device: str = "cpu") -> list[GroundedCase]:
    """Run the localization checkpoint over one part of the split and build each image's case."""
    from eiad.modeling.checkpoint import engine_from_checkpoint
    from eiad.split import load_split
    from train.eval.localization.predict import predict
    from train.localization.data import LocalizationDataset

    engine, saved = engine_from_checkpoint(Path(checkpoint), device=device)
    thresholds, names = saved.thresholds, saved.class_names
    if not thresholds:
        raise ModelError(f"{checkpoint} has no calibrated thresholds: finish the localization run first")
    data = LocalizationDataset(load_split(Path(split_path)), which, engine.height, engine.width)
    pred = predict(engine, data, device=device, keep_images=True)
    cases = []
    for i, path in enumerate(pred.paths):
        score = float(pred.image_scores[i])
        verdict, cls, mask = decide(score, pred.maps[i], pred.class_probs[i], thresholds, names)
        facts = measure_defect(mask, pred.images[i]) if verdict == "NG" else None
        prompt = grounded_prompt(verdict, cls, min(1.0, max(0.0, score)), facts)
        cases.append(GroundedCase(Path(path), verdict, cls, score, facts, prompt))
    return cases


def counterfactual_cases(
    cases: Sequence[GroundedCase], class_names: Sequence[str], per_case: int, seed: int = 0
) -> list[GroundedCase]:
    """`per_case` copies of every NG case with a mask, each with a seeded other class (or
    "unknown") and location in its prompt; everything else (image, size, shape, look) kept."""
    rng = random.Random(f"{seed}|counterfactual")
    choices = [*class_names, UNKNOWN_CLASS]
    out = []
    for case in cases:
        if case.verdict != "NG" or case.facts is None:
            continue
        for _ in range(per_case):
            facts = dataclasses.replace(case.facts, location=rng.choice(LOCATIONS))
            cls = rng.choice(choices)
            prompt = grounded_prompt("NG", cls, min(1.0, max(0.0, case.score)), facts)
            out.append(GroundedCase(case.image, "NG", cls, case.score, facts, prompt))
    return out


def grounded_records(cases: Sequence[GroundedCase], seed: int = 0, figures: bool = True) -> list[DialogRecord]:
    """Each case's prompt answered with the description of its own facts (seeded wording;
    `figures` False: the size bucket without the share and pixel count). An NG case without
    any mask pixel is left out: there is nothing to describe but the score."""
    records = []
    for case in cases:
        if case.verdict == "NG" and case.facts is None:
            continue
        # The file name, not the whole path: the same data gives the same wording wherever it lies.
        rng = random.Random(f"{seed}|grounded|{case.image.name}|{case.prompt}")
        if case.verdict == "NG":
            named = case.defect_class if case.defect_class != UNKNOWN_CLASS else None
            answer = describe_defect(case.facts, named, rng, figures)
        else:
            answer = describe_good(rng)
        records.append(DialogRecord(case.image, case.prompt, answer, f"grounded:{case.image.name}:{len(records)}"))
    log.info("grounded dialog records: %d of %d images", len(records), len(cases))
    return records
