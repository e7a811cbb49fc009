"""Grounded explanation prompts carry the localization module's findings, and stay torch-free."""

from __future__ import annotations

import subprocess
import sys

import pytest

from eiad.errors import DataError
from eiad.grounding import grounded_prompt, quadrant_of_box


def test_defect_prompt_names_class_confidence_quadrant_and_box():
    text = grounded_prompt("scratch", 0.934, (0.6, 0.1, 0.9, 0.3), None)
    assert "'scratch'" in text and "0.93" in text
    assert "top right" in text  # derived from the box centre (0.75, 0.2)
    assert "[0.600, 0.100, 0.900, 0.300]" in text
    assert text.rstrip().endswith("Refer to this defect and this location.")


def test_explicit_quadrant_and_question_are_kept():
    text = grounded_prompt("dent", 0.5, None, "bottom left", question="What caused it?")
    assert "bottom left" in text and "What caused it?" in text and "[" not in text


def test_no_defect_prompt():
    text = grounded_prompt(None, 0.03, None, None)
    assert "no defect" in text and "0.03" in text


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"confidence": 1.5}, "confidence"),
        ({"box_xyxy_norm": (0.5, 0.5, 0.2, 0.9)}, "box_xyxy_norm"),
        ({"box_xyxy_norm": (0.1, 0.1, 1.2, 0.9)}, "box_xyxy_norm"),
        ({"quadrant": "middle"}, "quadrant"),
    ],
)
def test_bad_values_are_rejected(kwargs, match):
    args = {"defect_class": "crack", "confidence": 0.9, "box_xyxy_norm": None, "quadrant": None} | kwargs
    with pytest.raises(DataError, match=match):
        grounded_prompt(**args)


def test_quadrants_match_ddqa_rdl_options():
    assert quadrant_of_box((0.0, 0.0, 0.2, 0.2)) == "top left"
    assert quadrant_of_box((0.6, 0.6, 1.0, 1.0)) == "bottom right"


def test_imports_without_torch():
    # given torch hidden, the edge can still import the prompt builder and the preprocessing spec
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from eiad.grounding import grounded_prompt\nfrom eiad.preprocess import PreprocessSpec\n"
        "print(grounded_prompt('x', 0.5, None, None)[:10])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
