"""Dialog path run outputs and --resume: a crashed-then-resumed run ends where an uninterrupted one does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from eiad.errors import ConfigError
from eiad.modeling.presets import build_tiny_preset
from train.dialog.config import DialogConfig
from train.dialog.trainer import train_dialog

AD_Q = "<image>Is there any visible defect in this image?\nA. No\nB. Yes\nAnswer with the option's letter."
# 2 epochs over 2 records, batch 1: 4 optimiser steps; a checkpoint at step 3 (epoch 1, one record in);
# dropout on, so the resumed run must also draw the same dropout masks.
CONFIG = DialogConfig(learning_rate=3e-3, epochs=2, checkpoint_every_steps=3, lora_dropout=0.1)


class Crash(RuntimeError):
    """Stands in for a killed job."""


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_preset("tiny-llava-siglip", tmp_path_factory.mktemp("presets") / "tiny-llava-siglip")


@pytest.fixture(scope="module")
def ddqa(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ddqa_resume")
    rng = np.random.default_rng(1)
    rows = []
    for i in range(3):
        img = (rng.random((32, 32, 3)) * 80 + 120).astype(np.uint8)
        if i % 2:
            img[4:12, 20:28] = 10
        Image.fromarray(img).save(root / f"{i}.png")
        rows.append({"query": AD_Q, "response": "B" if i % 2 else "A", "images": [f"{i}.png"]})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    (root / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[2:]))
    return {"train": root / "train.jsonl", "val": root / "val.jsonl"}


@pytest.fixture(scope="module")
def uninterrupted(tiny_dir, ddqa, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run_full")
    train_dialog(CONFIG, tiny_dir, ddqa["train"], ddqa["val"], out)
    return out


def _adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def test_resumed_run_equals_uninterrupted_run(tiny_dir, ddqa, uninterrupted, tmp_path):
    # given a run killed after its last step, before writing its outputs (last checkpoint: step 3)
    def crash_at_4(step: int, loss: float) -> None:
        if step == 4:
            raise Crash("killed")

    with pytest.raises(Crash):
        train_dialog(CONFIG, tiny_dir, ddqa["train"], ddqa["val"], tmp_path, on_step=crash_at_4)
    saved = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert saved["step"] == 3 and saved["epoch"] == 1 and saved["batch"] == 1
    assert not (tmp_path / "adapter").exists()  # the final adapter only appears at the end
    # when resumed
    report = train_dialog(CONFIG, tiny_dir, ddqa["train"], ddqa["val"], tmp_path, resume=True)
    # then it did the remaining step (mid-epoch) and ends bit-identical to the run that never stopped
    assert report.steps == 4 and report.resumed_from_step == 3
    full, resumed = _adapter(uninterrupted), _adapter(tmp_path)
    assert full.keys() == resumed.keys() and len(full) > 0
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    a = json.loads((uninterrupted / "metrics.json").read_text())
    b = json.loads((tmp_path / "metrics.json").read_text())
    assert b["train_loss"] == a["train_loss"] and len(a["train_loss"]) == 4
    assert b["loss_before"] == a["loss_before"] and b["loss_after"] == a["loss_after"]
    # and training moved the adapter at all (lora_B starts at zero)
    assert any(v.abs().sum() > 0 for k, v in full.items() if "lora_B" in k)


def test_run_writes_loss_curve_and_metrics(uninterrupted):
    # given a finished run, then its metrics hold per-step losses and its PNG is a real image
    metrics = json.loads((uninterrupted / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["eval_records"] == 1 and metrics["family"] == "llava_siglip"
    steps = [row[0] for row in metrics["train_loss"]]
    assert steps == list(range(1, 5)) and all(row[1] > 0 for row in metrics["train_loss"])
    assert metrics["loss_after"] < metrics["loss_before"]
    with Image.open(uninterrupted / "loss_curve.png") as png:
        assert png.format == "PNG" and png.size == (640, 360)
        pixels = np.asarray(png.convert("L"))
    assert pixels.std() > 10  # something is drawn
    saved = json.loads((uninterrupted / "checkpoint" / "trainer_state.json").read_text())
    assert saved["step"] == 4 and saved["format"] == "eiad-dialog"
    assert not list((uninterrupted / "checkpoint").rglob("*.bin")) and not list(uninterrupted.rglob("*.pt"))


def test_resume_refuses_other_config_or_missing_checkpoint(tiny_dir, ddqa, uninterrupted, tmp_path):
    # given a checkpoint written with lr 3e-3, when resumed with another lr, then a clear error
    other = CONFIG.model_copy(update={"learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="different config"):
        train_dialog(other, tiny_dir, ddqa["train"], ddqa["val"], uninterrupted, resume=True)
    # given an empty folder, when resumed, then the error says there is nothing to resume
    with pytest.raises(ConfigError, match="no dialog checkpoint"):
        train_dialog(CONFIG, tiny_dir, ddqa["train"], ddqa["val"], tmp_path, resume=True)


def test_a_loader_worker_builds_the_same_batches(tiny_dir, ddqa, uninterrupted, tmp_path):
    # given the same run with its batches built in a data loader process
    train_dialog(CONFIG.model_copy(update={"num_workers": 1}), tiny_dir, ddqa["train"], ddqa["val"], tmp_path)
    # then it trains to the same adapter, loss for loss
    full, worker = _adapter(uninterrupted), _adapter(tmp_path)
    assert all(torch.equal(full[key], worker[key]) for key in full)
    a = json.loads((uninterrupted / "metrics.json").read_text())
    b = json.loads((tmp_path / "metrics.json").read_text())
    assert b["train_loss"] == a["train_loss"]
