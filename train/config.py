"""`configs/train.yaml`: what `eiad train` reads. Validated once, at start; no I/O here
except `load_train_config`, which reads the file.

Two independent sections: `localization` (this module's training path) and `dialog`
(the LoRA path, typed by train/dialog/config.py). Either may be left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eiad.errors import ConfigError
from train.optimization import refuse_renamed

try:  # the dialog section is owned by the dialog path; typed by its own model
    from train.dialog.config import DialogConfig
except ImportError:  # pragma: no cover - only while the dialog path is not installed
    DialogConfig = dict  # type: ignore[misc,assignment]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CalibrationConfig(_Strict):
    """How thresholds are chosen on the calibration split (never on the test split)."""

    # target_frr: the line's tolerated overkill decides; best_f1: best F1 of NG vs OK.
    image_rule: Literal["target_frr", "best_f1"] = "target_frr"
    target_false_reject_rate: float = Field(0.01, ge=0.0, lt=1.0)  # fraction of good parts rejected
    pixel_rule: Literal["best_f1"] = "best_f1"
    min_defect_area_px: int = Field(0, ge=0)
    # A class is published when its confidence >= the cut-off at which published classes
    # were right this often on the calibration defects; else "unknown".
    target_class_precision: float = Field(0.9, gt=0.0, le=1.0)


class LocalizationConfig(_Strict):
    """The localization path: module shape, losses, optimiser and schedule."""

    taps: list[int] = Field(default_factory=lambda: [-4, -3, -2, -1])  # vision layers, -1 = last
    proj_dim: int = Field(64, gt=0)
    feature_channels: int = Field(16, ge=1)
    decoder_channels: int = Field(32, ge=4)
    stem: bool = True  # shallow conv stem on the image, for edge detail at coarse patch grids
    fine: bool = True  # a decoder stage at half the input size: thin scratches and cracks
    mask_pooling: bool = True  # class and score heads also see features under the predicted mask
    class_maps: bool = True  # a class per H/4 cell, averaged under the mask (dense class training signal)
    context: bool = True  # a dilated H/4 conv: wider context at the same cost (faint, large defects such as stains)
    reference: bool = False  # 1-shot: compare with a normal reference image's patches
    unfreeze_vision: bool = False  # random-weight tiny presets; `eiad train` then trains dialog on this tower
    # optimisation: the same keys as dialog: (train/optimization.py)
    learning_rate: float = Field(2e-3, gt=0)
    vision_learning_rate: float = Field(2e-3, gt=0)  # the unfrozen vision layers (unfreeze_vision)
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    min_lr_ratio: float = Field(0.05, ge=0, le=1)
    epochs: int = Field(10, gt=0)
    max_steps: int | None = Field(None, gt=0)  # stop early (optimizer steps); None = all epochs
    time_budget_s: float | None = Field(None, gt=0)  # stop after this wall time
    batch_size: int = Field(8, gt=0)
    # The share of good images in each epoch (every defect image, a fresh draw of good ones);
    # None: as many as the split has. Lets a line keep many good images for their variety
    # without fewer defect images per optimizer step.
    good_share: float | None = Field(None, gt=0, lt=1)
    gradient_accumulation_steps: int = Field(1, gt=0)
    max_grad_norm: float = Field(1.0, gt=0)
    hflip: bool = True
    vflip: bool = True
    camera_jitter: bool = (
        True  # shift/rotation/scale, exposure, white balance, noise, blur (train/localization/data.py)
    )
    focal_weight: float = Field(2.0, ge=0)
    dice_weight: float = Field(2.0, ge=0)
    image_weight: float = Field(1.0, ge=0)
    class_weight: float = Field(1.0, ge=0)
    focal_alpha: float = Field(0.5, gt=0, lt=1)  # 0.5: defect and background pixels weigh alike (sharper masks)
    focal_gamma: float = Field(2.0, ge=0)
    skeleton_weight: float = Field(1.0, ge=0)  # recall along the defects' centre lines (thin defects)
    class_map_weight: float = Field(1.0, ge=0)  # cross-entropy per defect cell (with class_maps)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on a CUDA GPU, fp32 on CPU
    num_workers: int = Field(0, ge=0)
    checkpoint_every_steps: int = Field(200, gt=0)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    # A line with no defect samples yet: train on the split's good images only, with
    # pseudo-defects drawn on them (train/localization/pseudo_defects.py), no classes; also builds the
    # normal bank. Calibration uses the calibration split's good images only.
    normal_only: bool = False
    pseudo_defect_probability: float = Field(0.5, gt=0, lt=1)  # share of good training images given one
    # which kinds are drawn (train/localization/pseudo_defects.py), each equally often
    pseudo_defect_kinds: list[Literal["scar", "patch", "foreign", "stroke"]] = Field(
        default_factory=lambda: ["scar", "patch", "foreign", "stroke"], min_length=1
    )
    # The memory bank of good patches (eiad/modeling/normal_bank.py), fused with the module's
    # map inside the graph. Always built with normal_only; optional beside a supervised module.
    normal_bank: bool = False
    bank_taps: list[int] = Field(default_factory=lambda: [0, 1])  # vision layers it reads
    bank_size: int = Field(2048, ge=16)  # patches kept (coreset); memory = size x dim x 4 bytes
    bank_dim: int | None = Field(None, ge=8)  # random projection width; None: the taps' width
    bank_blur_sigma_px: float = Field(4.0, ge=0)

    _renamed = model_validator(mode="before")(refuse_renamed)

    @field_validator("taps")
    @classmethod
    def _taps(cls, taps: list[int]) -> list[int]:
        if not taps or len(set(taps)) != len(taps):
            raise ValueError("taps must list distinct vision layers, e.g. [-4, -3, -2, -1]")
        return taps


class TrainConfig(_Strict):
    """Top-level training config."""

    backbone: str = "tiny-minicpmv46"  # preset name, local directory or hub id
    ddqa_dir: Path | None = None  # folder 'eiad data ddqa' wrote (train.jsonl, val/val.jsonl, split.json)
    split: Path | None = None  # split.json; default: ddqa_dir/split.json
    out_dir: Path = Path("runs/train")
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    localization: LocalizationConfig | None = Field(default_factory=LocalizationConfig)
    dialog: DialogConfig | None = None

    @model_validator(mode="after")
    def _some_path(self) -> TrainConfig:
        if self.localization is None and self.dialog is None:
            raise ValueError("configure at least one of 'localization' and 'dialog'")
        if self.split is None and self.ddqa_dir is None:
            raise ValueError("set 'ddqa_dir' (the DDQA build folder) or 'split' (its split.json)")
        if self.split is None:
            self.split = Path(self.ddqa_dir) / "split.json"
        return self


def load_train_config(path: Path) -> TrainConfig:
    """Read and validate a YAML config (relative paths inside are relative to the working directory).

    Raises ConfigError naming the file and the key path of each problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found: copy configs/train.yaml and edit it")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"{path}: {problems}") from error
