"""`eiad eval ddqa`: DDQA records in both forms -> model replies -> per-task accuracy, DFM box IoU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from commands.main import main
from eiad.errors import DataError
from eiad.modeling.presets import build_tiny_preset
from train.eval.qa.evaluate import (
    box_iou,
    format_qa_table,
    load_qa_items,
    parse_box,
    run_qa_eval,
    score_reply,
)

AD_Q = "<image>Is the product flawed?\nA. No\nB. Yes\nAnswer with the option's letter."
DC_Q = "<image>What kind of defect?\nA. stain\nB. scratch\nC. crack\nD. hole\nReply with the letter only."
RDL_Q = "<image>Where is the defect?\nA. bottom left\nB. top left\nC. bottom right\nD. top right\nGive the letter."
DFM_Q = "<image>Mark the defective area with a box: reply [x1, y1, x2, y2]."

# (task, question, reference answer, the fake model's reply) per image i
TABLE = [
    ("AD", AD_Q, "B", "B"),  # correct
    ("AD", AD_Q, "A", "Answer: B"),  # wrong
    ("AD", AD_Q, "A", "I cannot tell"),  # unparseable
    ("DC", DC_Q, "C", "(C) crack"),  # correct
    ("DC", DC_Q, "B", "A scratch is visible. Answer: B"),  # the article is not option A: correct
    ("RDL", RDL_Q, "D", "B or D"),  # first rule: B, wrong
    ("DFM", DFM_Q, "[0.000, 0.000, 0.500, 0.500]", "box: [0.0, 0.0, 0.5, 0.5]"),  # IoU 1
    ("DFM", DFM_Q, "[0.000, 0.000, 0.500, 0.500]", "[0.250, 0.000, 0.750, 0.500]"),  # IoU 1/3
    ("DFM", DFM_Q, "[0.100, 0.100, 0.300, 0.300]", "somewhere top left"),  # unparseable, IoU 0
]


class TableModel:
    """A stand-in chat model: image i is filled with grey 20*i; replies TABLE[i]'s reply; records prompts."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def generate(self, images, prompts, max_new_tokens=64):
        self.asked += prompts
        return [TABLE[img.getpixel((0, 0))[0] // 20][3] for img in images]


@pytest.fixture(scope="module")
def ddqa_dir(tmp_path_factory) -> Path:
    """A DDQA build folder: test/Task_*.jsonl, AD/DC in swift form, RDL/DFM in messages form, relative images."""
    root = tmp_path_factory.mktemp("qa_ddqa")
    (root / "test").mkdir()
    rows: dict[str, list[dict]] = {t: [] for t in ("AD", "DC", "RDL", "DFM")}
    for i, (task, question, answer, _) in enumerate(TABLE):
        Image.fromarray(np.full((24, 24, 3), 20 * i, np.uint8)).save(root / "test" / f"img{i}.png")
        if task in ("AD", "DC"):
            rows[task].append({"query": question, "response": answer, "images": [f"img{i}.png"]})
        else:
            rows[task].append(
                {
                    "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                    "images": [f"img{i}.png"],
                }
            )
    for task, recs in rows.items():
        (root / "test" / f"Task_{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        (root / f"Task_{task}.jsonl").write_text("")  # an empty train split must not break a test eval
    (root / "test" / "test.jsonl").write_text("".join((root / "test" / f"Task_{t}.jsonl").read_text() for t in rows))
    return root


@pytest.fixture()
def fake() -> TableModel:
    return TableModel()


def test_box_parsing_and_iou():
    assert parse_box("The box is [0.1, 0.2, 0.3, 0.4].") == (0.1, 0.2, 0.3, 0.4)
    assert parse_box("(0.5,0.5, 1.0 ,1)") == (0.5, 0.5, 1.0, 1.0)
    assert parse_box("[0.5, 0.5, 0.2, 0.9] then [0, 0, .5, .5]") == (0.0, 0.0, 0.5, 0.5)  # reversed box skipped
    assert parse_box("[12, 30, 80, 90]") is None  # pixels, not normalised
    assert parse_box("[0.1, 0.2, 0.3]") is None and parse_box("") is None
    assert box_iou((0, 0, 0.5, 0.5), (0.25, 0, 0.75, 0.5)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 0.2, 0.2), (0.5, 0.5, 1, 1)) == 0.0


def test_scores_match_hand_computed_replies(ddqa_dir, fake):
    # given the build's test split and a model with fixed replies
    items = load_qa_items(ddqa_dir, "test")
    assert [i.task for i in items] == [row[0] for row in TABLE]
    # when evaluated with the first-letter rule
    report = run_qa_eval(fake, items, rule="first", progress=False)
    # then each task's counts are what the table above says
    ad, dc, rdl, dfm = (report.tasks[t] for t in ("AD", "DC", "RDL", "DFM"))
    assert (ad.records, ad.correct, ad.unparseable) == (3, 1, 1)
    assert (dc.records, dc.correct, dc.unparseable) == (2, 2, 0)
    assert (rdl.records, rdl.correct, rdl.unparseable) == (1, 0, 0)
    assert (dfm.records, dfm.correct, dfm.unparseable) == (3, 1, 1)
    assert dfm.mean_iou == pytest.approx((1 + 1 / 3 + 0) / 3) and dfm.accuracy == pytest.approx(1 / 3)
    assert fake.asked[0] == AD_Q
    # when the last letter counts instead, then "B or D" becomes D: correct
    assert run_qa_eval(fake, items, rule="last", progress=False).tasks["RDL"].correct == 1
    table = format_qa_table(report)
    assert "DFM" in table and "0.444" in table and "33.3" in table


def test_option_text_fallback_reads_unlettered_reply(ddqa_dir, fake):
    # given "I cannot tell" to an AD question with options No/Yes: fallback picks the closest text
    items = [i for i in load_qa_items(ddqa_dir, "test") if i.task == "AD"]
    plain = run_qa_eval(fake, items, progress=False).tasks["AD"]
    fallback = run_qa_eval(fake, items, fallback_to_option_text=True, progress=False).tasks["AD"]
    assert plain.unparseable == 1 and fallback.unparseable == 0


def test_mixed_file_tasks_inferred_and_capped(ddqa_dir):
    # given val.jsonl holding all four tasks, when loaded, then each record's task is told from its content
    items = load_qa_items(ddqa_dir / "test" / "test.jsonl")
    assert [i.task for i in items] == [row[0] for row in TABLE]
    capped = load_qa_items(ddqa_dir / "test" / "test.jsonl", max_per_task=1)
    assert [i.task for i in capped] == ["AD", "DC", "RDL", "DFM"]
    assert load_qa_items(ddqa_dir, "test", max_per_task=2)[2].task == "DC"


def test_bad_inputs_name_the_file(ddqa_dir, tmp_path):
    with pytest.raises(DataError, match="every Task_.*empty"):
        load_qa_items(ddqa_dir, "train")
    with pytest.raises(DataError, match="Task_AD.jsonl: missing"):
        load_qa_items(tmp_path, "test")


def test_descriptions_are_scored_on_their_claims(tmp_path):
    # given a description record of a scratch in the DDQA layout (the class is its NG folder)
    image = tmp_path / "raw" / "A" / "s" / "NG" / "scratch" / "image" / "0.png"
    image.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(image)
    reference = "A scratch in the top left of the image. It is small, elongated and darker than its surroundings."
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps({"query": "<image>Describe the defect.", "response": reference, "images": [str(image)]}))
    (item,) = load_qa_items(path)
    assert item.task == "DD"
    score = lambda reply: score_reply(item, reply)  # noqa: E731
    # then a reply with the same class and place is right, whatever its words
    assert score("There is a scratch in the top left of the image, elongated.").correct
    assert score("A scratch in the top left.").parsed == "scratch, top left"
    # and a wrong place, a wrong look it states, a missing class or "no defect" are wrong
    assert not score("A scratch in the bottom right of the image.").correct
    assert not score("A scratch in the top left, brighter than its surroundings.").correct
    assert not score("A defect in the top left.").correct
    assert not score("No defect is visible.").correct
    assert score("All fine.").parsed is None


def test_real_tiny_model_run_with_and_without_adapter(ddqa_dir, tmp_path_factory, tmp_path, capsys):
    # given the tiny LLaVA preset and an untrained (identity) LoRA adapter for it
    from eiad.modeling.backbone.loading import load_backbone
    from train.dialog.config import DialogConfig
    from train.dialog.trainer import attach_lora

    model_dir = build_tiny_preset("tiny-llava-siglip", tmp_path_factory.mktemp("qa_presets") / "tiny-llava-siglip")
    attach_lora(load_backbone(model_dir), DialogConfig()).save_pretrained(tmp_path / "adapter")
    # when the CLI evaluates one record per task (4 records)
    base_out, lora_out = tmp_path / "base.json", tmp_path / "lora.json"
    common = [
        "eval",
        "ddqa",
        "--model",
        str(model_dir),
        "--ddqa",
        str(ddqa_dir),
        "--max-records",
        "1",
        "--max-new-tokens",
        "6",
        "--no-progress",
    ]
    assert main(common + ["--out", str(base_out)]) == 0
    assert main(common + ["--adapter", str(tmp_path / "adapter"), "--out", str(lora_out)]) == 0
    # then the report has one record per task, consistent counts, and the table was printed
    report = json.loads(base_out.read_text())
    assert list(report["tasks"]) == ["AD", "DC", "RDL", "DFM"] and len(report["records"]) == 4
    for task, row in report["tasks"].items():
        rows = [r for r in report["records"] if r["task"] == task]
        assert row["records"] == 1 == len(rows)
        assert row["unparseable"] == sum(r["parsed"] is None for r in rows)
        assert row["correct"] == sum(r["correct"] for r in rows)
    assert 0.0 <= report["tasks"]["DFM"]["mean_iou"] <= 1.0 and report["meta"]["split"] == "test"
    assert "Defect Fine Mapping" in capsys.readouterr().out
    # and a zero-initialised adapter changes no reply
    with_adapter = json.loads(lora_out.read_text())
    assert [r["reply"] for r in with_adapter["records"]] == [r["reply"] for r in report["records"]]
    assert with_adapter["meta"]["adapter"] == str(tmp_path / "adapter")
