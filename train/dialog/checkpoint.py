"""Dialog-path checkpoints (for --resume) and run outputs (loss curve, metrics). No pickle.

A checkpoint directory `OUT/dialog/checkpoint/`:
    adapter/               the LoRA weights at that step (peft format, safetensors)
    optimizer.safetensors  AdamW moments and step counts, tensors only
    trainer_state.json     step, epoch, micro-batch within the epoch, scheduler state,
                           optimizer param groups, train-loss history, held-out loss
                           before training, the DialogConfig and data it belongs to
Written to a temporary sibling and renamed, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from eiad.errors import ConfigError, ModelError
from eiad.modeling.checkpoint import optimizer_tensors, replace_directory, restore_optimizer

log = logging.getLogger(__name__)

FORMAT = "eiad-dialog"
VERSION = 1


@dataclass
class DialogState:
    """Mutable progress of one dialog run (owned by the training loop; not thread-safe).

    step: optimiser steps done; epoch: current epoch; batch: micro-batches of that epoch
    consumed; history: [step, train loss (nats/token, mean over the step's micro-batches), lr].
    """

    step: int = 0
    epoch: int = 0
    batch: int = 0
    loss_before: float | None = None
    history: list[list[float]] = field(default_factory=list)
    resumed_from: int = 0


def save_dialog_checkpoint(directory: Path, *, model, optimizer, scheduler, state: DialogState, identity: dict) -> Path:
    """Write adapter + optimizer/scheduler + progress atomically to `directory`."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp / "adapter")
    tensors, groups = optimizer_tensors(optimizer)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / "optimizer.safetensors"))
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "step": state.step,
        "epoch": state.epoch,
        "batch": state.batch,
        "loss_before": state.loss_before,
        "history": state.history,
        "param_groups": groups,
        "scheduler": scheduler.state_dict(),
        **identity,
    }
    (tmp / "trainer_state.json").write_text(json.dumps(payload, indent=2) + "\n")
    replace_directory(tmp, directory)
    log.debug("dialog checkpoint at step %d written to %s", state.step, directory)
    return directory


def load_dialog_checkpoint(directory: Path, *, model, optimizer, scheduler, identity: dict) -> DialogState:
    """Restore a checkpoint into built (not yet prepared) model/optimizer/scheduler; returns the progress.

    Raises ConfigError when there is nothing to resume or the run's config/data differ.
    """
    from peft import set_peft_model_state_dict

    directory = Path(directory)
    state_path = directory / "trainer_state.json"
    weights = directory / "adapter" / "adapter_model.safetensors"
    if not state_path.is_file() or not weights.is_file() or not (directory / "optimizer.safetensors").is_file():
        raise ConfigError(
            f"--resume: no dialog checkpoint in {directory} (needs trainer_state.json, "
            "optimizer.safetensors, adapter/); run without --resume to start over"
        )
    saved = json.loads(state_path.read_text())
    if saved.get("format") != FORMAT or saved.get("version") != VERSION:
        raise ModelError(
            f"{state_path}: format {saved.get('format')} v{saved.get('version')} is not {FORMAT} v{VERSION}"
        )
    changed = [key for key in identity if saved.get(key) != identity[key]]
    if changed:
        raise ConfigError(
            f"--resume: {state_path} was written for a different {', '.join(changed)}; resuming would "
            "not continue the same run. Use the same config and data, or start over without --resume"
        )
    result = set_peft_model_state_dict(model, load_file(str(weights)))
    if getattr(result, "unexpected_keys", None):
        raise ModelError(f"{weights}: adapter keys do not fit this model: {result.unexpected_keys[:3]}")
    restore_optimizer(optimizer, load_file(str(directory / "optimizer.safetensors")), saved["param_groups"])
    scheduler.load_state_dict(saved["scheduler"])
    log.info("resuming dialog run from step %d (epoch %d, batch %d)", saved["step"], saved["epoch"], saved["batch"])
    return DialogState(
        saved["step"],
        saved["epoch"],
        saved["batch"],
        saved["loss_before"],
        [list(h) for h in saved["history"]],
        resumed_from=saved["step"],
    )


class EpochOrder(torch.utils.data.Sampler):
    """Shuffled record order, a pure function of (seed, epoch), that can start mid-epoch.

    Makes a resumed run read exactly the records the interrupted one would have read.
    Call `set_position(epoch, skip)` before iterating the loader for an epoch.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch, self.skip = size, seed, 0, 0

    def set_position(self, epoch: int, skip_samples: int) -> None:
        self.epoch, self.skip = epoch, skip_samples

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist()[self.skip :])

    def __len__(self) -> int:
        return max(0, self.size - self.skip)


def save_dialog_curve(state: DialogState, loss_after: float, path: Path, title: str = "dialog LoRA") -> Path:
    """PNG: train loss per optimiser step, held-out answer loss before (step 0) and after (last step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    if state.history:
        ax.plot([h[0] for h in state.history], [h[1] for h in state.history], lw=1, label="train loss (per step)")
    last = state.history[-1][0] if state.history else 0
    if state.loss_before is not None:
        ax.scatter(
            [0, last], [state.loss_before, loss_after], color="C3", zorder=3, label="held-out loss before / after"
        )
        ax.plot([0, last], [state.loss_before, loss_after], color="C3", ls="--", lw=0.8)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("answer NLL (nats/token)")
    ax.set_title(title)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
