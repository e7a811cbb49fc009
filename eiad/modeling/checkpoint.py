"""Localization checkpoints: safetensors + JSON only, never pickle.

A checkpoint directory:
    localization.safetensors  the module's weights (incl. prompt text buffer, reference bank);
                              absent for a normal-only model
    normal_bank.safetensors   the memory bank of good patches, its projection and scale (only
                              when one was built: normal-only training or a fused model)
    vision.safetensors        the vision tower's weights, only when it was unfrozen
    optimizer.safetensors     AdamW moments + step (for --resume), tensors only
    trainer_state.json        step, epoch, optimizer param_groups, RNG seed bookkeeping
    meta.json                 localizer spec, backbone, preprocess spec, data fingerprint,
                              calibrated thresholds, held-out metrics
    config.yaml               the TrainConfig used
Written to a temporary sibling and renamed, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file

from eiad.errors import ModelError
from eiad.modeling.engine import EiadVisionEngine
from eiad.modeling.localization import DefectLocalizer, LocalizerSpec
from eiad.modeling.normal_bank import NormalBank, NormalBankSpec

log = logging.getLogger(__name__)

FORMAT = "eiad-localization"
VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    meta: dict
    localizer_state: dict[str, torch.Tensor] | None
    vision_state: dict[str, torch.Tensor] | None
    config: dict
    bank_state: dict[str, torch.Tensor] | None = None

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    @property
    def thresholds(self) -> dict | None:
        return self.meta.get("thresholds")

    @property
    def class_names(self) -> list[str]:
        """The supervised module's classes; none for a normal-only model."""
        spec = self.meta.get("localizer_spec")
        return list(spec["class_names"]) if spec else []

    def build_bank(self) -> NormalBank | None:
        """The normal bank, or None when the checkpoint has none."""
        if self.bank_state is None:
            return None
        bank = NormalBank(NormalBankSpec.from_dict(self.meta["normal_bank_spec"]))
        # Checkpoints from before the image score had a scale of its own score the map's maximum.
        identity = {"image_centre": bank.image_centre, "image_spread": bank.image_spread}
        bank.load_state_dict({**identity, **self.bank_state})
        return bank

    def build_localizer(self) -> DefectLocalizer | None:
        """The localization module, or None for a normal-only checkpoint."""
        if self.localizer_state is None:
            return None
        spec = LocalizerSpec.from_dict(self.meta["localizer_spec"])
        module = DefectLocalizer(spec, torch.zeros(len(spec.prompts), spec.text_hidden_size))
        for key, value in self.localizer_state.items():  # the bank's length varies: size buffers first
            if key.startswith("reference_bank_"):
                setattr(module, key, torch.zeros_like(value))
        module.load_state_dict(self.localizer_state)
        return module


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Split an optimizer state_dict into flat tensors (safetensors) and JSON param groups."""
    state = optimizer.state_dict()
    tensors = {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{index}.{name}"] = tensor
    return tensors, state["param_groups"]


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(
    directory: Path,
    *,
    localizer: DefectLocalizer | None,
    meta: dict,
    config: dict,
    vision_state: dict[str, torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    trainer_state: dict | None = None,
    bank: NormalBank | None = None,
) -> Path:
    """Write a checkpoint atomically to `directory` (replacing any previous one)."""
    if localizer is None and bank is None:
        raise ModelError("a checkpoint needs a localization module, a normal bank, or both")
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    full_meta = {"format": FORMAT, "version": VERSION}
    if localizer is not None:
        save_file(_contiguous(localizer.state_dict()), str(tmp / "localization.safetensors"))
        full_meta["localizer_spec"] = localizer.spec.to_dict()
    if bank is not None:
        save_file(_contiguous(bank.state_dict()), str(tmp / "normal_bank.safetensors"))
        full_meta["normal_bank_spec"] = bank.spec.to_dict()
    if vision_state:
        save_file(_contiguous(vision_state), str(tmp / "vision.safetensors"))
    full_meta.update(meta)
    (tmp / "meta.json").write_text(json.dumps(full_meta, indent=2, default=str) + "\n")
    (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if optimizer is not None:
        tensors, groups = optimizer_tensors(optimizer)
        save_file(_contiguous(tensors), str(tmp / "optimizer.safetensors"))
        state = dict(trainer_state or {}, param_groups=groups)
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n")
    replace_directory(tmp, directory)
    log.debug("checkpoint written to %s", directory)
    return directory


def replace_directory(tmp: Path, directory: Path) -> None:
    """Swap a fully written `tmp` folder in for `directory`: a crash leaves the old one or the
    new one (or `<name>.old` beside it), never a half-written checkpoint."""
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(directory: Path) -> Checkpoint:
    """Read a checkpoint (weights via safetensors, no pickle); raises ModelError if incomplete."""
    directory = Path(directory)
    meta_path = directory / "meta.json"
    weights = directory / "localization.safetensors"
    bank = directory / "normal_bank.safetensors"
    if not meta_path.is_file() or not (weights.is_file() or bank.is_file()):
        raise ModelError(
            f"{directory} is not a localization checkpoint (needs meta.json and localization.safetensors "
            "or normal_bank.safetensors); train one with 'eiad train --only localization'"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as error:
        raise ModelError(f"{meta_path} is damaged ({error}): copy the checkpoint again or retrain") from error
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ModelError(f"{meta_path}: format {meta.get('format')} v{meta.get('version')} is not {FORMAT} v{VERSION}")
    vision_path = directory / "vision.safetensors"
    config_path = directory / "config.yaml"
    return Checkpoint(
        path=directory,
        meta=meta,
        localizer_state=_weights(weights) if weights.is_file() else None,
        vision_state=_weights(vision_path) if vision_path.is_file() else None,
        config=yaml.safe_load(config_path.read_text()) if config_path.is_file() else {},
        bank_state=_weights(bank) if bank.is_file() else None,
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a truncated or damaged file is a ModelError naming it."""
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own SafetensorError (and OSError)
        raise ModelError(f"{path} is damaged ({error}): copy the checkpoint again or retrain") from error


def load_trainer_state(directory: Path) -> tuple[dict[str, torch.Tensor], dict] | None:
    """Optimizer tensors and trainer state for --resume, or None if the checkpoint has none."""
    directory = Path(directory)
    if not (directory / "optimizer.safetensors").is_file():
        return None
    return load_file(str(directory / "optimizer.safetensors")), json.loads(
        (directory / "trainer_state.json").read_text()
    )


def update_meta(directory: Path, **fields) -> None:
    """Add fields (thresholds, metrics) to an existing checkpoint's meta.json."""
    path = Path(directory) / "meta.json"
    meta = json.loads(path.read_text())
    meta.update(fields)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    tmp.replace(path)


def apply_vision_state(backbone, saved: Checkpoint) -> bool:
    """Give `backbone` the vision weights a localization run trained (`unfreeze_vision`), so
    every user of the tower (the exported engine, the dialog training, the merged model)
    sees the same features. False when the checkpoint kept the tower frozen."""
    if not saved.vision_state:
        return False
    missing = set(saved.vision_state) - set(dict(backbone.named_parameters()))
    if missing:
        raise ModelError(
            f"{saved.path}: vision weights {sorted(missing)[:3]}... do not fit backbone {saved.meta.get('backbone')}"
        )
    backbone.load_state_dict(saved.vision_state, strict=False)
    return True


def engine_from_checkpoint(path: Path, *, backbone=None, device="cpu") -> tuple[EiadVisionEngine, Checkpoint]:
    """Rebuild the vision engine (backbone + trained localizer) from a checkpoint directory."""
    saved = load_checkpoint(path)
    if backbone is None:
        from eiad.modeling.backbone.loading import load_backbone

        backbone = load_backbone(saved.meta["backbone"], device=device)
    apply_vision_state(backbone, saved)
    engine = EiadVisionEngine(backbone, saved.build_localizer(), saved.build_bank()).to(device).eval()
    return engine, saved
