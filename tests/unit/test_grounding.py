"""Grounded explanation prompts carry the localization module's findings, and stay torch-free."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest

from eiad.description.check import check_explanation, read_claims
from eiad.description.facts import measure_defect
from eiad.description.sentences import describe_defect
from eiad.errors import DataError
from eiad.grounding import DEFECT_QUESTION, OK_QUESTION, grounded_prompt

CLASSES = ("crack", "scratch", "missing_material")


def _scratch_facts():
    mask = np.zeros((64, 64), bool)
    mask[1:3, 40:60] = True  # a thin line in the top right, near the border
    image = np.full((64, 64), 150, np.uint8)
    image[mask] = 60
    return measure_defect(mask, image)


def test_a_defect_prompt_states_every_fact_the_description_needs():
    facts = _scratch_facts()
    text = grounded_prompt("NG", "missing_material", 0.934, facts)
    findings, question = text.split("\n")
    claims = read_claims(findings, CLASSES)
    assert claims.classes == {"missing_material"} and claims.locations == {"top right"}
    assert claims.shapes == {"elongated"} and claims.appearances == {"darker"} and claims.sizes == {"small"}
    assert "0.93" in findings and "near the edge" in findings and "(40 pixels)" in findings
    assert question == DEFECT_QUESTION


def test_the_description_of_the_same_facts_agrees_with_the_published_verdict():
    # what training teaches the model to answer to this prompt is consistent by construction
    facts = _scratch_facts()
    answer = describe_defect(facts, "scratch", random.Random(0))
    assert check_explanation(answer, "NG", "scratch", facts, CLASSES).consistent


def test_unknown_class_no_region_and_good_parts():
    facts = _scratch_facts()
    assert "unknown class" in grounded_prompt("NG", "unknown", 0.7, facts)
    assert "marked no region" in grounded_prompt("NG", "crack", 0.7, None)
    ok = grounded_prompt("OK", None, 0.03, facts)  # an OK verdict never passes mask facts on
    assert "no defect" in ok and "0.03" in ok and ok.endswith(OK_QUESTION) and "top right" not in ok
    assert grounded_prompt("NG", "crack", 0.9, facts, question="What caused it?").endswith("What caused it?")


@pytest.mark.parametrize(("args", "match"), [(("NG", "crack", 1.5), "score"), (("REJECTED", "crack", 0.5), "verdict")])
def test_bad_values_are_rejected(args, match):
    with pytest.raises(DataError, match=match):
        grounded_prompt(*args, None)


def test_imports_without_torch():
    # given torch hidden, the edge can still import the prompt builder, the checker and the preprocessing spec
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from eiad.grounding import grounded_prompt\nfrom eiad.preprocess import PreprocessSpec\n"
        "from eiad.description.check import check_explanation\n"
        "print(grounded_prompt('OK', None, 0.5, None)[:10])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
