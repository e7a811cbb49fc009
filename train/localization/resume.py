"""Saving a localization run so it can resume exactly where it stopped, and resuming it."""

from __future__ import annotations

import torch

from eiad.modeling import checkpoint as ckpt


def save_run(path, engine, vision, optimizer, state, meta, config_dump) -> None:
    """A checkpoint a run can resume from: the module, the trained vision weights, the
    optimizer and where the loop was (step, epoch, batch, loss history)."""
    vision_state = {name: p for name, p in vision.items()} if vision else None
    trainer = {k: state[k] for k in ("step", "epoch", "batch", "history")}
    ckpt.save_checkpoint(
        path,
        localizer=engine.localizer,
        bank=engine.bank,
        meta=dict(meta, step=state["step"]),
        config=config_dump,
        vision_state=vision_state,
        optimizer=optimizer,
        trainer_state=trainer,
    )


def restore_run(path, engine, vision, optimizer, device) -> dict:
    """Load `save_run`'s checkpoint into the engine, the vision weights and the optimizer;
    returns the loop state to continue from."""
    saved = ckpt.load_checkpoint(path)
    engine.localizer.load_state_dict(saved.build_localizer().state_dict())
    engine.localizer.to(device)
    if vision and saved.vision_state:
        with torch.no_grad():
            for name, p in vision.items():
                p.copy_(saved.vision_state[name].to(device))
    tensors, trainer = ckpt.load_trainer_state(path)
    ckpt.restore_optimizer(optimizer, tensors, trainer.pop("param_groups"))
    return trainer
