"""Merge a dialog LoRA adapter into its backbone: a plain checkpoint `load_backbone` reads."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from eiad.errors import ModelError
from eiad.modeling.backbone.loading import load_backbone

log = logging.getLogger(__name__)


def merge_lora(backbone_dir: Path, adapter_dir: Path, out_dir: Path, vision_from: Path | None = None) -> Path:
    """Load backbone + adapter, fold the LoRA deltas into the weights, save_pretrained to out_dir.

    `vision_from`: the localization checkpoint whose vision weights the dialog run trained on
    (its dialog_config.json says which); the merged model keeps that tower. The result loads
    with `load_backbone(out_dir)` and gives the adapter model's outputs.
    """
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelError(f"{adapter_dir}: no adapter_config.json; pass the 'adapter' folder a dialog run wrote")
    backbone = load_backbone(backbone_dir)
    if vision_from is not None:
        from eiad.modeling.checkpoint import apply_vision_state, load_checkpoint

        apply_vision_state(backbone, load_checkpoint(Path(vision_from)))
    merged = PeftModel.from_pretrained(backbone.hf_model, adapter_dir).merge_and_unload()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir)
    backbone.processor.save_pretrained(out_dir)
    (out_dir / "eiad_merge.json").write_text(
        json.dumps(
            {
                "backbone": str(backbone_dir),
                "adapter": str(adapter_dir),
                "vision_from": str(vision_from) if vision_from is not None else None,
                "family": backbone.family,
            },
            indent=2,
        )
    )
    log.info("merged %s into %s -> %s", adapter_dir, backbone_dir, out_dir)
    return out_dir
