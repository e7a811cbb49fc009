"""What both training paths (localization, dialog) share about optimisation: one
vocabulary for its settings and one learning-rate schedule.

Keys (in both `localization:` and `dialog:`): learning_rate, lr_schedule (cosine, linear,
constant), warmup_ratio, min_lr_ratio, weight_decay, max_grad_norm,
gradient_accumulation_steps, precision (auto, fp32, bf16), epochs, max_steps, batch_size.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "linear", "constant")

# Keys earlier configs used for the localization path -> the shared name.
RENAMED = {
    "lr": "learning_rate",
    "vision_lr": "vision_learning_rate",
    "warmup_fraction": "warmup_ratio",
    "min_lr_fraction": "min_lr_ratio",
    "grad_accum_steps": "gradient_accumulation_steps",
    "grad_clip": "max_grad_norm",
    "bf16": "precision (auto, fp32 or bf16)",
}


def refuse_renamed(data):
    """A pydantic 'before' check: a config still using an old key name gets the new one."""
    if isinstance(data, dict):
        old = [key for key in data if key in RENAMED]
        if old:
            raise ValueError(
                "renamed key(s): "
                + ", ".join(f"{key} -> {RENAMED[key]}" for key in old)
                + " (both training paths share one vocabulary; see docs/training.md)"
            )
    return data


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Optimizer steps of linear warm-up: `warmup_ratio` of the run, at least one when > 0."""
    if warmup_ratio <= 0:
        return 0
    return max(1, math.ceil(total_steps * warmup_ratio - 1e-9))


def lr_factor(step: int, total_steps: int, warmup: int, schedule: str = "cosine", min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based): linear
    warm-up to 1 over `warmup` steps, then down to `min_ratio` at `total_steps` (cosine or
    linear; constant stays at 1) and at the floor past the end."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    decay = 0.5 * (1.0 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress
    return min_ratio + (1.0 - min_ratio) * decay


def mixed_precision(precision: str, gpu: bool) -> str:
    """accelerate's `mixed_precision` for a `precision` setting, the same for both paths: bf16
    autocast on a CUDA GPU for `auto` and `bf16`; fp32 ("no") otherwise. A CPU run is fp32
    even when bf16 is asked for (CPU bf16 autocast is slower than fp32 on most CPUs)."""
    return "bf16" if precision != "fp32" and gpu else "no"
