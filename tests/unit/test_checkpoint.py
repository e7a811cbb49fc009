"""Localization checkpoints: safetensors round trip, optimizer state, --resume."""

import json

import pytest
import torch

from eiad.errors import ModelError
from eiad.modeling import checkpoint as ckpt
from eiad.modeling.checkpoint import engine_from_checkpoint
from eiad.modeling.engine import EiadVisionEngine
from eiad.modeling.localization import build_localizer
from tests.unit.test_localization_support import TinyLlavaBackbone, make_split
from train.config import TrainConfig
from train.localization.trainer import train_localization


def test_save_and_load_give_identical_outputs(tmp_path):
    # given a trained-looking localizer with a reference bank and changed vision weights
    torch.manual_seed(0)
    backbone = TinyLlavaBackbone()
    localizer = build_localizer(backbone, (1, 3), ["hole"], reference=True)
    for p in localizer.parameters():
        p.data.add_(0.01 * torch.randn_like(p))
    engine = EiadVisionEngine(backbone, localizer).eval()
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        localizer.set_reference(backbone.forward_vision(engine.preprocess(images[:1]), engine.taps).layer_features)
        layer = backbone.hf_model.model.vision_tower.encoder.layers[0].mlp.fc1
        layer.weight.add_(0.1)
        before = engine(images)
    vision = {n: p for n, p in backbone.named_parameters() if "encoder.layers.0." in n}
    # when saved and rebuilt on a fresh backbone (original random weights)
    ckpt.save_checkpoint(
        tmp_path / "ck",
        localizer=localizer,
        meta={"backbone": "fake", "thresholds": {"pixel": 0.4}},
        config={"seed": 0},
        vision_state=vision,
    )
    engine2, saved = engine_from_checkpoint(tmp_path / "ck", backbone=TinyLlavaBackbone())
    with torch.no_grad():
        after = engine2(images)
    # then every output is identical and the metadata came back
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert saved.thresholds == {"pixel": 0.4} and saved.config == {"seed": 0}
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob("*.old"))


def test_optimizer_state_round_trips_without_pickle(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, groups = ckpt.optimizer_tensors(opt)
    opt2 = torch.optim.AdamW(model.parameters(), lr=5.0)
    ckpt.restore_optimizer(opt2, tensors, json.loads(json.dumps(groups)))
    assert opt2.param_groups[0]["lr"] == 1e-3
    for key, value in opt.state_dict()["state"][0].items():
        torch.testing.assert_close(opt2.state_dict()["state"][0][key], value)


def test_load_rejects_a_folder_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ModelError, match="not a localization checkpoint"):
        ckpt.load_checkpoint(tmp_path)


def _config(split, out, epochs):
    # constant LR so a 1 + 1 epoch run is comparable with a 2 epoch run
    return TrainConfig(
        split=split,
        out_dir=out,
        device="cpu",
        seed=3,
        localization={
            "taps": [1, 3],
            "epochs": epochs,
            "batch_size": 4,
            "unfreeze_vision": True,
            "warmup_ratio": 0.0,
            "min_lr_ratio": 1.0,
            "decoder_channels": 8,
            "proj_dim": 16,
        },
    )


@pytest.mark.slow
def test_resume_continues_exactly_where_it_stopped(tmp_path):
    split = make_split(tmp_path / "data", n_train=8, n_held_out=4)
    # given one run of 2 epochs straight through
    straight = train_localization(_config(split, tmp_path / "a", 2), backbone=TinyLlavaBackbone())
    # and one of 1 epoch, then resumed to 2 epochs in the same folder
    train_localization(_config(split, tmp_path / "b", 1), backbone=TinyLlavaBackbone())
    resumed = train_localization(_config(split, tmp_path / "b", 2), backbone=TinyLlavaBackbone(), resume=True)
    # then both reach the same step with the same weights and the same metrics
    assert straight.steps == resumed.steps == 4
    a, b = ckpt.load_checkpoint(straight.checkpoint), ckpt.load_checkpoint(resumed.checkpoint)
    for key, value in a.localizer_state.items():
        torch.testing.assert_close(b.localizer_state[key], value, rtol=1e-5, atol=1e-6, msg=key)
    for key, value in a.vision_state.items():
        torch.testing.assert_close(b.vision_state[key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert resumed.metrics["pixel_auroc"] == pytest.approx(straight.metrics["pixel_auroc"], abs=1e-5)
