"""Both training paths share one vocabulary for their optimisation settings and one schedule."""

from __future__ import annotations

import pytest
import yaml

from eiad.errors import ConfigError
from train.config import LocalizationConfig, load_train_config
from train.dialog.config import DialogConfig
from train.optimization import RENAMED, lr_factor, warmup_steps

SHARED = (
    "learning_rate",
    "lr_schedule",
    "warmup_ratio",
    "min_lr_ratio",
    "weight_decay",
    "max_grad_norm",
    "gradient_accumulation_steps",
    "precision",
    "epochs",
    "max_steps",
    "batch_size",
)


def test_both_paths_name_their_optimisation_settings_alike():
    for key in SHARED:
        assert key in LocalizationConfig.model_fields and key in DialogConfig.model_fields, key


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_an_old_key_is_refused_with_its_new_name(tmp_path, old):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"split": "x.json", "localization": {old: 1}}))
    with pytest.raises(ConfigError) as info:
        load_train_config(path)
    assert f"{old} -> {RENAMED[old].split()[0]}" in str(info.value)


def test_the_schedule_warms_up_decays_to_its_floor_and_stays_there():
    warm = warmup_steps(100, 0.05)
    assert warm == 5 and warmup_steps(100, 0.0) == 0 and warmup_steps(10, 0.01) == 1
    cosine = [lr_factor(s, 100, warm, "cosine", 0.1) for s in range(100)]
    assert cosine[0] == pytest.approx(0.2) and cosine[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(cosine[4:], cosine[5:])) and cosine[-1] == pytest.approx(0.1, abs=0.01)
    assert lr_factor(500, 100, warm, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(55, 105, 5, "linear") == pytest.approx(0.5)
    assert lr_factor(90, 100, 5, "constant") == 1.0


def test_both_paths_read_precision_the_same_way():
    from train.optimization import mixed_precision

    assert mixed_precision("auto", gpu=True) == "bf16" and mixed_precision("bf16", gpu=True) == "bf16"
    assert mixed_precision("fp32", gpu=True) == "no"
    # On a CPU every setting trains in fp32 (bf16 asked for included), in both training paths.
    assert {mixed_precision(p, gpu=False) for p in ("auto", "fp32", "bf16")} == {"no"}
