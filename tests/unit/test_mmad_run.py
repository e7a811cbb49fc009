"""`eiad eval mmad`: MMAD json + images -> prompts (0-/1-shot) -> MMAD answers file -> MMAD table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from commands.main import main
from eiad.errors import DataError, ModelError
from eiad.modeling.presets import build_tiny_preset
from train.eval.mmad.run import (
    INSTRUCTION,
    generate_multi,
    load_mmad,
    multi_image_inputs,
    one_shot_parts,
    run_mmad,
)
from train.eval.mmad.score import load_answers, score_answers

GOOD = "DS-Test/widget/image/good/000.png"
BAD = "DS-Test/widget/image/scratch/001.png"
TEMPLATE = "DS-Test/widget/train/good/010.png"
AD = {"Question": "Is there any defect in the object?", "Options": {"A": "Yes", "B": "No"}, "type": "Anomaly Detection"}


@pytest.fixture(scope="module")
def mmad(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mmad")
    for rel, grey in ((GOOD, 60), (BAD, 120), (TEMPLATE, 180)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((40, 40, 3), grey, np.uint8)).save(root / rel)
    data = {
        GOOD: {
            "conversation": [
                {**AD, "Answer": "B"},
                {
                    "Question": "What is this object?",
                    "Answer": "A",
                    "Options": {"A": "widget", "B": "bottle", "C": "cable"},
                    "type": "Object Classification",
                },
            ],
            "similar_templates": [TEMPLATE],
            "random_templates": [TEMPLATE],
            "mask_path": "",
        },
        BAD: {
            "conversation": [
                {**AD, "Answer": "A"},
                {
                    "Question": "What type of defect?",
                    "Answer": "C",
                    "Options": {"A": "crack", "B": "hole", "C": "scratch", "D": "stain"},
                    "type": "Defect Classification",
                },
                {
                    "Question": "Is the shape intact?",
                    "Answer": "A",
                    "Options": {"A": "Yes", "B": "No"},
                    "type": "Object Structure",
                },
            ],
            "similar_templates": [TEMPLATE],
            "random_templates": [GOOD],
            "mask_path": "x.png",
        },
    }
    (root / "mmad.json").write_text(json.dumps(data))
    return {"root": root, "json": root / "mmad.json"}


class ScriptedAnswerer:
    """Replies from a list in order; remembers how many images (and which greys) each question came with."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[list[int], str]] = []

    def __call__(self, images, text):
        self.calls.append(([img.getpixel((0, 0))[0] for img in images], text))
        return self.replies.pop(0)


def test_load_builds_mmad_prompts(mmad):
    questions = load_mmad(mmad["json"])
    assert len(questions) == 5 and questions[0].template is None
    assert questions[0].prompt() == f"Question: Is there any defect in the object?\nA. Yes\nB. No\n{INSTRUCTION}"
    one_shot = load_mmad(mmad["json"], shots=1, template="random", max_questions=3)
    assert [q.template for q in one_shot] == [TEMPLATE, TEMPLATE, GOOD]


def test_answers_file_format_and_score(mmad):
    # given scripted replies (one raw reply without a letter) for the five questions, 0-shot
    replies = ["B", "The object is a widget, A.", "Answer: A", "(B) hole", "no idea"]
    answerer = ScriptedAnswerer(replies)
    records = run_mmad(answerer, load_mmad(mmad["json"]), mmad["root"], progress=False)
    # then one image per question, and MMAD's five keys per record
    assert [greys for greys, _ in answerer.calls] == [[60], [60], [120], [120], [120]]
    assert all(set(r) == {"image", "question", "question_type", "correct_answer", "gpt_answer"} for r in records)
    assert [r["gpt_answer"] for r in records] == ["B", "A", "A", "B", "no idea"]  # raw reply kept when no letter
    text = "Question: Is there any defect in the object? \nA. Yes\nB. No\n"
    assert records[0]["question"] == {"type": "text", "text": text}
    # when scored, then: AD normal 1/1, anomalous 1/1 -> 100; DC 0/1; OC 1/1; Object Analysis dropped (no letter)
    score = score_answers(records)
    row = score.rows["DS-Test"]
    assert row["Anomaly Detection"] == 100.0 and row["Defect Classification"] == 0.0
    assert row["Object Classification"] == 100.0 and row["Object Analysis"] is None
    assert score.unparseable == 1 and score.scored == 4


def test_one_shot_sends_template_first(mmad):
    answerer = ScriptedAnswerer(["A"] * 5)
    run_mmad(answerer, load_mmad(mmad["json"], shots=1), mmad["root"], progress=False)
    assert [greys for greys, _ in answerer.calls] == [[180, 60]] * 2 + [[180, 120]] * 3


def test_bad_mmad_inputs_name_the_entry(mmad, tmp_path):
    bad = tmp_path / "bad.json"
    no_options = {"Question": "q", "Answer": "A", "type": "Anomaly Detection"}
    bad.write_text(json.dumps({GOOD: {"conversation": [no_options]}}))
    with pytest.raises(DataError, match=r"conversation\[0\]: missing Options"):
        load_mmad(bad)
    bad.write_text(json.dumps({GOOD: {"conversation": [{**AD, "Answer": "A"}], "similar_templates": []}}))
    with pytest.raises(DataError, match="1-shot needs a non-empty 'similar_templates'"):
        load_mmad(bad, shots=1)
    with pytest.raises(DataError, match="check --image-root"):
        run_mmad(ScriptedAnswerer(["A"] * 5), load_mmad(mmad["json"]), tmp_path, progress=False)


class OtherFamily:
    """A backbone of a family without multi-image support."""

    family = "other"
    image_placeholder = "<image>"
    processor = tokenizer = type("NoTemplate", (), {"chat_template": None})()

    def prepare_image(self, image):
        return image


def test_unsupported_family_says_use_zero_shot():
    img = Image.new("RGB", (8, 8))
    with pytest.raises(ModelError, match="use --shots 0"):
        generate_multi(OtherFamily(), [img, img], one_shot_parts("q"))


@pytest.mark.parametrize("preset", ["tiny-minicpmv46", "tiny-llava-siglip"])
def test_two_images_reach_the_model(preset, tmp_path_factory):
    # given a real tiny backbone, when a 1-shot turn is encoded, then it holds twice one image's tokens
    from eiad.modeling.backbone.loading import load_backbone

    bb = load_backbone(build_tiny_preset(preset, tmp_path_factory.mktemp("mm") / preset))
    img = Image.new("RGB", (30, 30), (90, 90, 90))
    image_id = bb.hf_model.config.image_token_id
    one = bb.chat_inputs([img], ["q"])["input_ids"]
    two = multi_image_inputs(bb, [img, img], one_shot_parts("q"))
    assert int((two["input_ids"] == image_id).sum()) == 2 * int((one == image_id).sum()) > 0
    assert isinstance(generate_multi(bb, [img, img], one_shot_parts("q"), max_new_tokens=3), str)


@pytest.mark.parametrize("shots", ["0", "1"])
def test_cli_runs_tiny_model_and_scores(mmad, shots, tmp_path, tmp_path_factory, capsys):
    # given the tiny LLaVA preset, when 'eiad eval mmad' runs over the json
    model = build_tiny_preset("tiny-llava-siglip", tmp_path_factory.mktemp("mmcli") / "tiny-llava-siglip")
    out = tmp_path / f"answers_{shots}_shot.json"
    rc = main(
        [
            "eval",
            "mmad",
            "--model",
            str(model),
            "--mmad-json",
            str(mmad["json"]),
            "--image-root",
            str(mmad["root"]),
            "--shots",
            shots,
            "--rule",
            "last",
            "--max-new-tokens",
            "4",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    # then the answers file is valid MMAD, scored beside it, and the exit code says whether anything was scored
    records = load_answers(out)
    assert len(records) == 5 and [r["image"] for r in records] == [GOOD] * 2 + [BAD] * 3
    assert [r["correct_answer"] for r in records] == ["B", "A", "A", "C", "A"]
    scored = sum(r["gpt_answer"] in ("A", "B", "C", "D", "E") for r in records)
    assert rc == (0 if scored else 1)
    csv_text = (tmp_path / f"answers_{shots}_shot_accuracy.csv").read_text()
    assert csv_text.startswith(",Anomaly Detection,") and "\nDS-Test," in csv_text
    assert "records scored" in capsys.readouterr().out
