"""Does the trained dialog model say something true? Its answers to the explainer's grounded
question on held-out images, read back with the consistency checker.

For each test image the localization checkpoint judges the part the way the station does
(train/dialog/grounded.py); the model answers the grounded question; then:
- words: the answer's length (an operator reads a sentence, not a letter);
- consistent: eiad/description/check.py against the published verdict, class and the
  facts of the published (predicted) mask: what the edge flags;
- class and location agree: neither "verdict", "class" nor "location" disagreed;
- shape / appearance agree with the truth: the answer states the shape (appearance)
  measured on the ground-truth mask and the image (defective parts the station rejected).
Only images held out from training and calibration (the split's test part) are used.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from eiad.description.check import check_explanation
from eiad.description.facts import DefectFacts, measure_defect


def truth_facts(entry) -> DefectFacts | None:
    """Facts of a split entry's ground-truth mask and image (None for a good part)."""
    import cv2

    if entry.label != "NG" or not entry.mask:
        return None
    mask = cv2.imread(str(entry.mask), cv2.IMREAD_GRAYSCALE)
    image = cv2.imread(str(entry.image), cv2.IMREAD_GRAYSCALE)
    return measure_defect(mask, image) if mask is not None else None


def share(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def explanation_quality(
    model, cases, truth: dict[str, DefectFacts | None], class_names, max_new_tokens: int = 80, examples: int = 3
) -> dict:
    """Ask `model` (anything with `generate(images, prompts, max_new_tokens)`) each case's
    grounded question and score the answers; `truth` maps an image path to its true facts."""
    from PIL import Image

    rows = []
    for case in cases:
        with Image.open(case.image) as image:
            (answer,) = model.generate([image.convert("RGB")], [case.prompt], max_new_tokens)
        check = check_explanation(answer, case.verdict, case.defect_class, case.facts, class_names)
        rows.append((case, answer, check, truth.get(str(case.image))))
    ng = [r for r in rows if r[0].verdict == "NG"]
    rejected_defects = [r for r in ng if r[3] is not None]
    return {
        "images": len(rows),
        "ng_explained": len(ng),
        "median_words": statistics.median(len(r[1].split()) for r in ng) if ng else None,
        "consistent": share([r[2].consistent for r in rows]),
        "class_location_agreement": share([not {"verdict", "class", "location"} & set(r[2].disagreements) for r in ng]),
        "shape_agreement": share([r[2].claims.shapes == {r[3].shape} for r in rejected_defects]),
        "appearance_agreement": share(
            [r[2].claims.appearances == {r[3].appearance} for r in rejected_defects if r[3].appearance]
        ),
        "ok_says_no_defect": share([r[2].claims.no_defect for r in rows if r[0].verdict == "OK"]),
        "examples": [
            {
                "image": str(case.image),
                "verdict": case.verdict,
                "class": case.defect_class,
                "truth": truth_facts_dict(t),
                "explanation": answer,
                "consistent": check.consistent,
                "disagreements": list(check.disagreements),
            }
            for case, answer, check, t in (ng + [r for r in rows if r[0].verdict == "OK"])[:examples]
        ],
    }


def truth_facts_dict(facts: DefectFacts | None) -> dict | None:
    return None if facts is None else {k: v for k, v in facts.to_dict().items() if k not in ("aspect", "contrast")}


def choose_cases(cases, max_ng: int, max_ok: int):
    """The first `max_ng` NG and `max_ok` OK cases in split order (a bounded, reproducible set)."""
    ng = [c for c in cases if c.verdict == "NG" and c.facts is not None][:max_ng]
    ok = [c for c in cases if c.verdict == "OK"][:max_ok]
    return ng + ok


def truth_of_split(split_path: Path, which: str = "test") -> dict[str, DefectFacts | None]:
    from eiad.split import load_split

    return {str(e.image): truth_facts(e) for e in load_split(Path(split_path)).entries(which)}
