"""Dialog (LoRA) path on the tiny MiniCPM-V 4.6 preset: data forms, masking, training, adapters, merge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from eiad.dialog_records import read_ddqa
from eiad.errors import DataError
from eiad.modeling.backbone.loading import load_backbone
from eiad.modeling.presets import build_tiny_preset
from train.dialog.config import DialogConfig
from train.dialog.merge import merge_lora
from train.dialog.trainer import attach_lora, evaluate_answer_loss, train_dialog
from train.optimization import lr_factor, warmup_steps

AD_Q = "<image>Is there any visible defect in this image?\nA. No\nB. Yes\nAnswer with the option's letter."
RDL_Q = "<image>Where is the defect?\nA. top left\nB. top right\nC. bottom left\nD. bottom right"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_preset("tiny-minicpmv46", tmp_path_factory.mktemp("presets") / "tiny-minicpmv46")


@pytest.fixture(scope="module")
def ddqa(tmp_path_factory) -> dict[str, Path]:
    """Ten images (half with a dark 'defect' square); DDQA files in both forms, plus a held-out split."""
    root = tmp_path_factory.mktemp("ddqa")
    rng = np.random.default_rng(0)
    swift, messages = [], []
    for i in range(10):
        img = (rng.random((64, 64, 3)) * 60 + 150).astype(np.uint8)
        defect = i % 2 == 1
        if defect:
            img[8:24, 40:56] = 20
        Image.fromarray(img).save(root / f"img{i}.png")
        swift.append({"query": AD_Q, "response": "B" if defect else "A", "images": [f"img{i}.png"]})
        answer = "[0.625, 0.125, 0.875, 0.375]" if defect else "No defect."
        messages.append(
            {
                "messages": [
                    {"role": "system", "content": "You inspect parts."},
                    {"role": "user", "content": RDL_Q},
                    {"role": "assistant", "content": answer},
                ],
                "images": [str(root / f"img{i}.png")],
            }
        )
    files = {"swift": swift[:6], "val": swift[6:], "messages": messages[:6]}
    for name, rows in files.items():
        (root / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return {name: root / f"{name}.jsonl" for name in files} | {"root": root}


def test_both_record_forms_parse(ddqa):
    # given the two jsonl forms, when read, then questions, answers and resolved images come out
    swift, msgs = read_ddqa(ddqa["swift"]), read_ddqa(ddqa["messages"])
    assert [r.answer for r in swift] == ["A", "B"] * 3
    assert swift[0].image == ddqa["root"] / "img0.png" and swift[0].question.startswith("<image>Is there")
    assert msgs[1].answer.startswith("[0.625") and msgs[1].question == RDL_Q
    assert msgs[0].where.endswith("messages.jsonl:1")


def test_bad_record_names_file_and_line(tmp_path):
    # given a record whose image is missing, when read, then the error names file:line
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "q", "response": "A", "images": ["nope.png"]}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: image nope.png not found"):
        read_ddqa(bad)
    bad.write_text('{"query": "q"\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: not valid JSON"):
        read_ddqa(bad)


def test_prompt_tokens_are_masked(tiny_dir, ddqa):
    # given one record, when turned into model inputs, then only the answer (+ end of turn) is labelled
    bb = load_backbone(tiny_dir)
    rec = read_ddqa(ddqa["swift"])[1]
    batch = bb.chat_inputs([rec.load_image()], [rec.question], [rec.answer])
    labels, ids = batch["labels"][0], batch["input_ids"][0]
    answer_ids = bb.tokenizer(rec.answer + bb.tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    n = len(answer_ids)
    assert labels[:-n].eq(-100).all()
    assert labels[-n:].tolist() == answer_ids == ids[-n:].tolist()
    image_id = bb.hf_model.config.image_token_id
    assert (ids == image_id).sum() == 16  # 16x16 patches, merged 16x -> 16 image tokens, none labelled


def test_lora_touches_only_language_side(tiny_dir):
    # given the tiny backbone with LoRA attached, then no vision-tower parameter is trainable
    bb = load_backbone(tiny_dir)
    model = attach_lora(bb, DialogConfig())
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert not any("vision_tower" in n for n in trainable)
    assert any("language_model" in n for n in trainable) and any(".merger." in n for n in trainable)


def test_lr_schedule_warms_up_then_decays_to_zero():
    factors = [lr_factor(s, 100, warmup_steps(100, 0.05), "cosine") for s in range(100)]
    assert factors[0] == pytest.approx(0.2) and factors[4] == pytest.approx(1.0)
    assert factors[5] == pytest.approx(1.0) and factors[-1] < 0.01
    assert all(a >= b for a, b in zip(factors[5:], factors[6:]))


def test_training_lowers_answer_loss_and_adapter_round_trips(tiny_dir, ddqa, tmp_path):
    # given a raised lr (tiny random model), when trained 2 epochs on six swift records
    config = DialogConfig(learning_rate=3e-3, epochs=2, lora_dropout=0.0)
    report = train_dialog(config, tiny_dir, ddqa["swift"], ddqa["val"], tmp_path / "run")
    # then the answer loss on four held-out images drops clearly and the run is written
    assert report.steps == 12 and report.eval_records == 4 and report.eval_split == "test"
    assert report.loss_after < 0.5 * report.loss_before, report
    assert json.loads((tmp_path / "run" / "dialog_config.json").read_text())["config"]["lora_rank"] == 8
    # when the adapter is loaded back through peft, then it scores the same loss
    from peft import PeftModel

    bb = load_backbone(tiny_dir)
    peft_model = PeftModel.from_pretrained(bb.hf_model, tmp_path / "run" / "adapter").eval()
    records = read_ddqa(ddqa["val"])
    assert evaluate_answer_loss(peft_model, bb, records) == pytest.approx(report.loss_after, rel=1e-4)
    # when merged, then the merged checkpoint gives the adapter model's logits
    merged = load_backbone(merge_lora(tiny_dir, tmp_path / "run" / "adapter", tmp_path / "merged"))
    batch = bb.chat_inputs([records[1].load_image()], [records[1].question])
    with torch.no_grad():
        a = peft_model(**batch).logits
        b = merged.hf_model(**batch).logits
    assert (a - b).abs().max() < 1e-3 * a.abs().max(), (a - b).abs().max()
    assert isinstance(merged.generate([records[1].load_image()], [records[1].question], max_new_tokens=3)[0], str)
    # and the vision tower (the localization module's input) is bit-identical after dialog training + merge
    original = load_backbone(tiny_dir).hf_model.model.vision_tower.state_dict()
    after = merged.hf_model.model.vision_tower.state_dict()
    assert original.keys() == after.keys() and all(torch.equal(original[k], after[k]) for k in original)
