"""Grounded dialog records: the station's decision rules, answers that follow their prompt,
and counterfactual prompts that make the model read the prompt rather than the image."""

import dataclasses
from pathlib import Path

import numpy as np

from eiad.description.check import check_explanation
from eiad.description.facts import measure_defect
from eiad.grounding import grounded_prompt
from train.dialog.grounded import GroundedCase, counterfactual_cases, decide, grounded_records

NAMES = ["crack", "hole", "stain"]
THRESHOLDS = {"image_score": 0.5, "pixel": 0.6, "class_confidence": 0.7, "min_defect_area_px": 0}


def test_decisions_follow_the_station_rules():
    anomaly = np.zeros((32, 32), np.float32)
    anomaly[4:8, 4:20] = 0.9
    sure, unsure = np.array([0.1, 0.8, 0.1]), np.array([0.4, 0.3, 0.3])
    verdict, cls, mask = decide(0.9, anomaly, sure, THRESHOLDS, NAMES)
    assert (verdict, cls, int(mask.sum())) == ("NG", "hole", 64)
    assert decide(0.9, anomaly, unsure, THRESHOLDS, NAMES)[1] == "unknown"
    assert decide(0.4, anomaly, sure, THRESHOLDS, NAMES)[:2] == ("OK", None)
    # a minimum area larger than the mask: the score alone does not reject
    assert decide(0.9, anomaly, sure, {**THRESHOLDS, "min_defect_area_px": 100}, NAMES)[0] == "OK"


def _case(cls="crack"):
    mask = np.zeros((64, 64), bool)
    mask[2:4, 10:40] = True
    facts = measure_defect(mask, np.where(mask, 40, 160).astype(np.uint8))
    return GroundedCase(Path("/x/a.png"), "NG", cls, 0.9, facts, grounded_prompt("NG", cls, 0.9, facts))


def test_every_answer_agrees_with_its_own_prompt_counterfactuals_included():
    ok = GroundedCase(Path("/x/b.png"), "OK", None, 0.1, None, grounded_prompt("OK", None, 0.1, None))
    cases = [_case(), ok]
    extra = counterfactual_cases(cases, NAMES, per_case=8, seed=0)
    assert len(extra) == 8  # the OK case gets none
    # the counterfactuals change what the prompt says, not the image
    assert {c.image for c in extra} == {Path("/x/a.png")}
    assert len({(c.defect_class, c.facts.location) for c in extra}) > 3
    for case, record in zip(cases + extra, grounded_records(cases + extra, seed=0), strict=True):
        assert record.question == case.prompt
        check = check_explanation(record.answer, case.verdict, case.defect_class, case.facts, NAMES)
        assert check.consistent, (record.question, record.answer, check.disagreements)


def test_answers_without_figures_keep_the_size_word_and_stay_consistent():
    case = _case()
    with_figures, without = grounded_records([case], seed=0)[0], grounded_records([case], seed=0, figures=False)[0]
    assert "pixels" in with_figures.answer and "%" in with_figures.answer
    assert "pixels" not in without.answer and "%" not in without.answer
    assert f" {case.facts.size}" in without.answer and len(without.answer.split()) >= 12
    check = check_explanation(without.answer, "NG", case.defect_class, case.facts, NAMES)
    assert check.consistent and check.claims.sizes == {case.facts.size}


def test_the_wording_does_not_depend_on_where_the_data_lies():
    case = _case()
    moved = dataclasses.replace(case, image=Path("/elsewhere/deeper") / case.image.name)
    answers = [r.answer for r in grounded_records([case, moved], seed=0)]
    assert answers[0] == answers[1]


def test_an_ng_case_without_a_mask_is_not_a_record():
    bare = GroundedCase(Path("/x/c.png"), "NG", "crack", 0.9, None, grounded_prompt("NG", "crack", 0.9, None))
    assert grounded_records([bare]) == []


def test_ddqa_tasks_keep_only_the_chosen_tasks():
    from eiad.dialog_records import DialogRecord
    from train.dialog.config import DialogConfig
    from train.dialog.records import tasks_of

    image = Path("/x/a.png")
    records = [
        DialogRecord(image, "Is it defective?\nA. No\nB. Yes\nAnswer with the letter.", "B", "f:1"),
        DialogRecord(image, "Where exactly is the defect? Give its box.", "[0.100, 0.100, 0.200, 0.300]", "f:2"),
        DialogRecord(image, "Describe the defect.", "A crack in the top left of the image.", "f:3"),
    ]
    assert tasks_of(records, DialogConfig()) == records  # None: every task
    assert [r.where for r in tasks_of(records, DialogConfig(ddqa_tasks=["DD"]))] == ["f:3"]
    assert [r.where for r in tasks_of(records, DialogConfig(ddqa_tasks=["AD", "DFM"]))] == ["f:1", "f:2"]


def test_ddqa_share_caps_the_image_only_records_with_a_seeded_sample():
    from eiad.dialog_records import DialogRecord
    from train.dialog.config import DialogConfig
    from train.dialog.records import capped

    ddqa = [DialogRecord(Path(f"/x/{i}.png"), "Describe the defect.", "A crack.", f"f:{i}") for i in range(100)]
    # given 90 grounded records beside 100 DDQA ones, a 10 % share keeps 10 DDQA records (10 of 100 in all)
    kept = capped(ddqa, 90, DialogConfig(ddqa_share=0.1))
    assert len(kept) == 10 and kept == sorted(kept, key=lambda r: int(r.where[2:]))
    # the same seed draws the same records, another seed others; no cap without the key or without grounded records
    assert kept == capped(ddqa, 90, DialogConfig(ddqa_share=0.1))
    assert kept != capped(ddqa, 90, DialogConfig(ddqa_share=0.1, seed=1))
    assert capped(ddqa, 90, DialogConfig()) == ddqa and capped(ddqa, 0, DialogConfig(ddqa_share=0.1)) == ddqa
    # a share above what there is keeps every record
    assert capped(ddqa, 90, DialogConfig(ddqa_share=0.9)) == ddqa
