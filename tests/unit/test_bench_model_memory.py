"""Memory of the real checkpoints: counted from architectures built on the meta device."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("build", ["minicpmv46", "llava_interleave"])
def test_counted_parameters_equal_the_published_checkpoints(build):
    # given a real checkpoint's architecture built from its published configuration (no weights)
    from benchmarks import model_memory

    checkpoint, parts, shape = getattr(model_memory, build)()
    result = model_memory.memory(checkpoint, parts, shape)
    # then its parameter count is the hub's safetensors total, to the parameter
    assert result["parameters"]["counted_total"] == parts.total_published_model
    # and LoRA trains a small share, never the tower; bf16 training weights are 2 B per parameter
    assert 0 < parts.lora < 0.01 * result["parameters"]["counted_total"]
    assert result["training_bytes"]["weights_bf16"] == 2 * result["parameters"]["counted_total"]
    # and the quantized decoders are smaller than fp32 in the documented order
    decoder = result["edge_bytes"]["decoder"]
    assert decoder["int4"] < decoder["int8"] < decoder["fp32"]


def test_lora_targets_follow_the_family_regex_and_skip_the_tower():
    import torch

    from benchmarks.model_memory.checkpoints import _lora_params

    model = torch.nn.ModuleDict(
        {
            "language_model": torch.nn.ModuleDict({"q_proj": torch.nn.Linear(4, 6)}),
            "vision_tower": torch.nn.ModuleDict({"q_proj": torch.nn.Linear(4, 6)}),
        }
    )
    assert _lora_params(model, r".*language_model.*\.q_proj", rank=2) == 2 * (4 + 6)


def test_the_counted_localization_module_is_the_one_training_builds_by_default():
    from benchmarks.model_memory import LOCALIZER_OPTIONS, LOCALIZER_TAPS
    from train.config import LocalizationConfig

    defaults = LocalizationConfig()
    assert len(defaults.taps) == LOCALIZER_TAPS
    assert {key: getattr(defaults, key) for key in LOCALIZER_OPTIONS} == LOCALIZER_OPTIONS
