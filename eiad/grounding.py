"""Grounded explanation prompts: tell the language model what the localization module found.

Torch-free. The edge explainer builds the prompt from the published result (verdict,
class, score) and the facts measured on the published mask and the frame
(eiad/description/facts.py); training builds the same prompt from the localization
module's output on training images, so the model learns to speak from what the edge
gives it. The expected answer is the description sentence of those same facts
(eiad/description/sentences.py), which the consistency checker can read back.
"""

from __future__ import annotations

from eiad.description.facts import DefectFacts
from eiad.description.sentences import class_words, percent
from eiad.errors import DataError

# Short on purpose: the findings line carries the facts; every prompt token costs prefill time
# at the edge and training time.
DEFECT_QUESTION = "Describe the defect for the operator in one sentence."
OK_QUESTION = "Tell the operator in one sentence whether the part is good."


def findings(defective: bool, defect_class: str | None, score: float, facts: DefectFacts | None) -> str:
    """The facts line: what the module found, in the words the description uses."""
    name = f"'{class_words(defect_class)}'" if defect_class and defect_class != "unknown" else "unknown class"
    if not defective:
        return f"The inspection module found no defect in this image (anomaly score {score:.2f})."
    if facts is None:  # NG on the score alone, no pixel over the pixel threshold
        return f"The inspection module found a defect of {name} (anomaly score {score:.2f}) but marked no region."
    where = "the centre" if facts.location == "centre" else f"the {facts.location}"
    parts = [f"The inspection module found a defect of {name} (anomaly score {score:.2f}) in {where} of the image"]
    if facts.near_edge:
        parts.append("near the edge")
    parts.append(f"{facts.regions} region{'s' if facts.regions != 1 else ''}")
    parts.append(f"size {facts.size}, {percent(facts.area_share)} of the image ({facts.area_px} pixels)")
    parts.append(f"shape {facts.shape}")
    if facts.appearance is not None:
        looks = "as bright as" if facts.appearance == "similar" else f"{facts.appearance} than"
        parts.append(f"looks {looks} its surroundings")
    return "; ".join(parts) + "."


def grounded_prompt(
    verdict: str, defect_class: str | None, score: float, facts: DefectFacts | None, question: str | None = None
) -> str:
    """The user turn for an explanation that agrees with the published verdict and mask.

    `verdict` "NG" or "OK"; `facts` are measured on the published mask (None: no mask
    pixel). `score` is the image score in 0..1. Raises DataError on a bad value.
    """
    if verdict not in ("NG", "OK"):
        raise DataError(f"grounded_prompt: verdict must be 'NG' or 'OK', got {verdict!r}")
    if not 0.0 <= score <= 1.0:
        raise DataError(f"grounded_prompt: score must be in 0..1, got {score}")
    defective = verdict == "NG"
    default = DEFECT_QUESTION if defective else OK_QUESTION
    return f"{findings(defective, defect_class, score, facts if defective else None)}\n{question or default}"
