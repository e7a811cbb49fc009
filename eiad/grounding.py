"""Grounded explanation prompts: tell the language model what the localization module found.

Torch-free: the edge explainer builds the prompt from the published InspectionResult, so
the explanation names the same class, place and box as the mask the PLC already got.
"""

from __future__ import annotations

from eiad.errors import DataError

QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
DEFAULT_QUESTION = "Explain what is wrong with the part and why it was rejected."
OK_QUESTION = "Describe the part and confirm whether any defect is visible."


def quadrant_of_box(box_xyxy_norm: tuple[float, float, float, float]) -> str:
    """The DDQA rough-localization quadrant of a normalised box's centre."""
    x1, y1, x2, y2 = box_xyxy_norm
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return f"{'top' if cy < 0.5 else 'bottom'} {'left' if cx < 0.5 else 'right'}"


def grounded_prompt(
    defect_class: str | None,
    confidence: float,
    box_xyxy_norm: tuple[float, float, float, float] | None,
    quadrant: str | None,
    question: str | None = None,
) -> str:
    """The user turn for an explanation that agrees with the published verdict and mask.

    defect_class None means the module found no defect. confidence is the image score in
    0..1. box_xyxy_norm is (x1, y1, x2, y2) in 0..1 of image width/height. quadrant is one
    of QUADRANTS; when None it is derived from the box. Raises DataError on values out of
    range, naming the argument.
    """
    if not 0.0 <= confidence <= 1.0:
        raise DataError(f"grounded_prompt: confidence must be in 0..1, got {confidence}")
    if box_xyxy_norm is not None:
        box = tuple(float(v) for v in box_xyxy_norm)
        if len(box) != 4 or not all(0.0 <= v <= 1.0 for v in box) or box[0] > box[2] or box[1] > box[3]:
            raise DataError(
                f"grounded_prompt: box_xyxy_norm must be (x1, y1, x2, y2) in 0..1 with x1<=x2, y1<=y2, "
                f"got {box_xyxy_norm}"
            )
        quadrant = quadrant or quadrant_of_box(box)  # type: ignore[arg-type]
    if quadrant is not None and quadrant not in QUADRANTS:
        raise DataError(f"grounded_prompt: quadrant must be one of {QUADRANTS}, got {quadrant!r}")
    if defect_class is None:
        facts = f"The inspection module found no defect in this image (anomaly score {confidence:.2f})."
        return f"{facts}\n{question or OK_QUESTION}"
    facts = [f"The inspection module found a defect of class '{defect_class}' (confidence {confidence:.2f})"]
    if quadrant is not None:
        facts.append(f"in the {quadrant} of the image")
    if box_xyxy_norm is not None:
        facts.append(
            "inside the box [" + ", ".join(f"{v:.3f}" for v in box_xyxy_norm) + "] (x1, y1, x2, y2, normalised to 0..1)"
        )
    return " ".join(facts) + ".\n" + (question or DEFAULT_QUESTION) + " Refer to this defect and this location."
