"""`load_backbone`: a preset name, a local `save_pretrained` directory or a hub id -> the
`EiadBackbone` subclass of its family (picked from the saved config's `model_type`)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from eiad.errors import ModelError
from eiad.modeling.backbone.base import EiadBackbone


def load_backbone(name_or_path: str | Path, *, device: str = "cpu", dtype: torch.dtype | None = None) -> EiadBackbone:
    """Load a backbone from a preset name, a local `save_pretrained` directory or a hub id.

    `tiny-*` presets are built into the cache on first use. Raises ModelError with the fix
    when the directory is missing/incomplete, the family is unsupported, or the hub is
    unreachable.
    """
    from eiad.modeling.presets import PRESETS, build_tiny_preset, default_cache_dir

    target = str(name_or_path)
    if target in PRESETS:
        preset = PRESETS[target]
        if preset.builder is not None:
            target = str(build_tiny_preset(preset.name, default_cache_dir() / preset.name))
        elif preset.family == "minicpmv2_6":
            from eiad.modeling.backbone.minicpmv26 import unsupported_here

            raise unsupported_here(preset.hub_id or "")
        else:
            target = preset.hub_id or target
    path = Path(target)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: no config.json; point at a directory written by save_pretrained")
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    else:
        model_type = _hub_model_type(target)
    return _family_class(model_type, target).load(target, device=device, dtype=dtype)


def _hub_model_type(hub_id: str) -> str:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(hub_id).model_type
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load backbone {hub_id!r}: it is not a local directory and the Hugging Face hub is not "
            f"reachable or has no such repo ({exc.__class__.__name__}). Download it elsewhere "
            f"(`huggingface-cli download {hub_id} --local-dir DIR`) and pass DIR."
        ) from exc


def _family_class(model_type: str | None, where: str) -> type:
    if model_type == "minicpmv4_6":
        from eiad.modeling.backbone.minicpmv46 import MiniCPMV46Backbone

        return MiniCPMV46Backbone
    if model_type == "llava":
        from eiad.modeling.backbone.llava import LlavaSiglipBackbone

        return LlavaSiglipBackbone
    if model_type == "minicpmv":
        from eiad.modeling.backbone.minicpmv26 import unsupported_here

        raise unsupported_here(where)
    raise ModelError(
        f"{where}: model_type {model_type!r} is not a supported backbone family "
        "(supported: minicpmv4_6, llava with a SigLIP tower; MiniCPM-V-2.6 via docs/model.md)"
    )
