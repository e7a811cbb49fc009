"""Backbone adapter on the tiny presets of both families, built from configs and saved/loaded for real."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from eiad.errors import ModelError
from eiad.modeling.backbone.loading import load_backbone
from eiad.modeling.presets import build_tiny_preset
from eiad.preprocess import PreprocessSpec

FAMILIES = {"tiny-minicpmv46": "minicpmv4_6", "tiny-llava-siglip": "llava_siglip"}


@pytest.fixture(scope="module")
def preset_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("presets")
    return {name: build_tiny_preset(name, root / name) for name in FAMILIES}


@pytest.fixture(scope="module")
def backbones(preset_dirs):
    return {name: load_backbone(path) for name, path in preset_dirs.items()}


def _pixels(bb, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, bb.spec.height, bb.spec.width, generator=g)


@pytest.mark.parametrize("name", FAMILIES)
def test_saved_preset_is_small_and_reloads_identically(name, preset_dirs, backbones):
    # given a built preset, then it is a few MB of safetensors and its family is detected on load
    path = preset_dirs[name]
    assert sum(p.stat().st_size for p in path.iterdir()) < 10e6
    assert not list(path.glob("*.bin")) and list(path.glob("*.safetensors"))
    bb = backbones[name]
    assert bb.family == FAMILIES[name]
    # when loaded a second time, then vision features and LM logits are identical
    again = load_backbone(path)
    pix = _pixels(bb, 2)
    image = (np.random.default_rng(1).random((50, 70, 3)) * 255).astype(np.uint8)
    batch = bb.chat_inputs([image], ["Is there any visible defect?"])
    with torch.no_grad():
        assert torch.equal(bb.forward_vision(pix, [0, -1]).tokens, again.forward_vision(pix, [0, -1]).tokens)
        assert torch.equal(bb.hf_model(**batch).logits, again.hf_model(**batch).logits)


def test_build_is_cached_and_rebuilt_when_marker_differs(preset_dirs):
    # given a built preset, when built again, then the weights file is not rewritten
    path = preset_dirs["tiny-llava-siglip"]
    weights = next(path.glob("*.safetensors"))
    stamp = weights.stat().st_mtime_ns
    build_tiny_preset("tiny-llava-siglip", path)
    assert weights.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("name", FAMILIES)
def test_forward_vision_shapes_and_layers(name, backbones):
    bb = backbones[name]
    gh, gw = bb.patch_grid()
    assert (gh, gw) == (bb.spec.height // 14, bb.spec.width // 14) == (16, 16)
    with torch.no_grad():
        out = bb.forward_vision(_pixels(bb, 3), [0, 2, -1])
    assert [tuple(f.shape) for f in out.layer_features] == [(3, gh * gw, bb.vision_hidden_size)] * 3
    assert out.tokens.shape[0] == 3 and out.tokens.shape[2] == bb.vision_hidden_size
    # different layers give different features; the last layer equals layer num_layers-1
    assert not torch.allclose(out.layer_features[0], out.layer_features[1])
    with torch.no_grad():
        last = bb.forward_vision(_pixels(bb, 3), [bb.num_vision_layers - 1]).layer_features[0]
    assert torch.equal(last, out.layer_features[2])
    with pytest.raises(ModelError, match="out of range"):
        bb.forward_vision(_pixels(bb, 1), [bb.num_vision_layers])


def test_minicpm_fixed_size_pass_matches_hf_packed_tower(backbones):
    # given MiniCPM-V 4.6, the batched fixed-size pass equals HF's NaViT-packed tower per image
    bb = backbones["tiny-minicpmv46"]
    pix = _pixels(bb, 2)
    gh, gw, p = *bb.patch_grid(), bb.patch
    packed = pix.reshape(2, 3, gh, p, gw, p).permute(1, 3, 0, 2, 4, 5).reshape(1, 3, p, -1)
    sizes = torch.tensor([[gh, gw], [gh, gw]], dtype=torch.int32)
    with torch.no_grad():
        ref = bb.hf_model.model.vision_tower(packed, target_sizes=sizes).last_hidden_state[0]
        ours = bb.forward_vision(pix, [-1]).tokens
    assert ours.shape == (2, gh * gw // 4, bb.vision_hidden_size)
    torch.testing.assert_close(ours.reshape(-1, bb.vision_hidden_size), ref, atol=1e-5, rtol=1e-5)


def test_llava_tokens_are_what_the_projector_consumes(backbones):
    bb = backbones["tiny-llava-siglip"]
    pix = _pixels(bb, 2)
    with torch.no_grad():
        ref = bb.hf_model.model.get_image_features(pix, return_dict=True).pooler_output
        ours = bb.hf_model.model.multi_modal_projector(bb.forward_vision(pix, [-1]).tokens)
    torch.testing.assert_close(ours, torch.stack(list(ref)))


@pytest.mark.parametrize("name", FAMILIES)
def test_embed_text_and_generate(name, backbones):
    bb = backbones[name]
    emb = bb.embed_text(["a normal part", "a scratch on the part", "x"])
    assert emb.shape == (3, bb.text_hidden_size) and not emb.requires_grad
    assert not torch.allclose(emb[0], emb[1])
    images = [(np.random.default_rng(i).random((40, 60, 3)) * 255).astype(np.uint8) for i in range(2)]
    answers = bb.generate(images, ["Is there any visible defect?", "Where is the defect?"], max_new_tokens=4)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


@pytest.mark.parametrize("name", FAMILIES)
def test_lora_regex_never_selects_the_vision_tower(name, backbones):
    bb = backbones[name]
    names = [n for n, m in bb.hf_model.named_modules() if isinstance(m, torch.nn.Linear)]
    chosen = [n for n in names if re.fullmatch(bb.lora_target_regex, n)]
    assert chosen and not any("vision_tower" in n for n in chosen)
    assert any("language_model" in n for n in chosen)
    assert any(("merger" in n or "projector" in n) for n in chosen)
    assert "lm_head" not in chosen


def test_spec_is_data(backbones):
    spec = backbones["tiny-llava-siglip"].spec
    assert PreprocessSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.to_dict()["mean"] == [0.5, 0.5, 0.5] and spec.resize == "stretch"


def test_load_errors_say_what_to_do(tmp_path, monkeypatch):
    import huggingface_hub.constants

    with pytest.raises(ModelError, match="no config.json"):
        load_backbone(tmp_path)
    with pytest.raises(ModelError, match="unknown backbone preset|not a supported"):
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
        load_backbone(tmp_path)
    with pytest.raises(ModelError, match="requirements/minicpmv26.txt"):
        load_backbone("base-minicpmv26")
    # hub ids go through from_pretrained; offline, the error says to download and pass a directory
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="--local-dir DIR"):
        load_backbone("someorg/not-a-model")


@pytest.mark.parametrize("name", FAMILIES)
def test_projected_prompt_equals_hf_models_own_image_prompt(name, backbones):
    # given an image + question, run through the HF model's own path (processor, vision, projector, splice)
    bb = backbones[name]
    rgb = np.random.default_rng(3).integers(0, 255, (bb.spec.height, bb.spec.width, 3), dtype=np.uint8)
    question = "<image>Is there a defect? Answer {yes} or no."
    batch = bb.chat_inputs([rgb], [question])  # the tiny specs are RGB: arrays are taken as they are
    mean = torch.tensor(bb.spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(bb.spec.std).view(1, 3, 1, 1)
    pixels = (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255 - mean) / std
    with torch.no_grad():
        ref = bb.hf_model(**batch).logits
        # when the prompt is built from the fixed-size vision tokens, the projector and the template
        tokens = bb.forward_vision(pixels, [-1]).tokens
        embeds = bb.image_prompt_embeds(tokens, question)
        hidden = bb.hf_model.model.language_model(inputs_embeds=embeds).last_hidden_state
        ours = bb.hf_model.lm_head(hidden)
    # then the sequence has the same length and the logits are the model's own
    assert embeds.shape[1] == batch["input_ids"].shape[1]
    assert bb.project_vision(tokens).shape[-1] == bb.text_hidden_size
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
    before, after = bb.prompt_template()
    assert "{prompt}" in after and after.format(prompt="Q").count("Q") >= 1
