"""Configuration of the dialog (LoRA) training path. Defaults = upstream EIAD's recipe
(ms-swift 2.x LoRA defaults on MiniCPM-V-2.6): rank 8, alpha 32, dropout 0.05, lr 1e-4,
cosine schedule with 5% warm-up, weight decay 0.1, grad clip 0.5, 1 epoch, batch 1."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from train.optimization import refuse_renamed


class DialogConfig(BaseModel):
    """LoRA fine-tuning of the language side on DDQA answers. Does no I/O. The
    optimisation keys are the localization path's (train/optimization.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lora_rank: int = Field(8, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # None: the backbone family's own regex (LLM + projector/resampler linears, never the vision tower).
    lora_target_regex: str | None = None
    learning_rate: float = Field(1e-4, gt=0.0)
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    weight_decay: float = Field(0.1, ge=0.0)
    max_grad_norm: float = Field(0.5, gt=0.0)
    epochs: int = Field(1, ge=1)
    # Optional cap on optimiser steps (after accumulation); None = epochs over the data.
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    gradient_checkpointing: bool = False
    # "auto": bf16 on a CUDA GPU, fp32 on CPU.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    seed: int = 0
    # Held-out answer loss is measured on at most this many val records (None = all).
    eval_max_records: int | None = Field(None, ge=1)
    max_new_tokens: int = Field(80, ge=1)
    # Also train on the explainer's grounded question, built from the localization module's output
    # on the split's train images (needs a finished localization run in the same out_dir).
    # Which DDQA tasks of train.jsonl / test.jsonl to train on (None: all five). A tiny model
    # with minutes of CPU learns the description sooner without the letter-answer tasks.
    ddqa_tasks: list[Literal["AD", "DC", "RDL", "DFM", "DD"]] | None = None
    # At most this share of the training records are DDQA records (a seeded sample; None: all of
    # them). The description task answers from the image alone while the explainer's grounded
    # records must follow the prompt; a tiny model given many of the former learns to read the
    # place from the picture and ignores the published one (benchmarks/results/dialog_recipe).
    ddqa_share: float | None = Field(None, gt=0.0, le=1.0)
    grounded: bool = True
    # Per NG training image, this many grounded records with another class and location in the
    # prompt (train/dialog/grounded.py): the answer must follow the prompt, not the image.
    grounded_counterfactuals: int = Field(3, ge=0)
    # Whether the grounded answers state the defect's share of the image and its pixel count
    # (copied from the prompt) or only its size word. A tiny LM cannot copy multi-digit figures:
    # it writes typical ones, which the station's checker flags; a real checkpoint copies them.
    grounded_figures: bool = True
    # The explanation report after training: how many held-out NG / OK images the model describes.
    report_ng_images: int = Field(40, ge=0)
    report_ok_images: int = Field(10, ge=0)
    # Data loader processes that read images and build each batch (processor, tokenizer) beside
    # the training step instead of before it; 0: in the training process.
    num_workers: int = Field(0, ge=0)
    # Optimiser steps between checkpoints (adapter + optimizer/scheduler state) for --resume; also at the end.
    checkpoint_every_steps: int = Field(50, ge=1)

    _renamed = model_validator(mode="before")(refuse_renamed)
