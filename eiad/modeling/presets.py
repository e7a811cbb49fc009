"""Backbone presets: tiny random models built from configs, and the real checkpoints.

`tiny-*` presets are small random models, built offline from a config plus a tiny BPE tokenizer
trained on a fixed corpus, and saved with `save_pretrained`; they exist for tests and the
CPU demo (random weights: the localization module learns on top of them, the LLM says
nonsense until the dialog path trains it). `base-*` presets name the real checkpoints;
they load through the same `from_pretrained` code, from a local directory or the hub.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from eiad.errors import ModelError

log = logging.getLogger(__name__)

_MARKER = "eiad_preset.json"
# Bump when a tiny builder changes, so cached builds are rebuilt.
_BUILD_VERSION = 3


@dataclass(frozen=True)
class Preset:
    """A named backbone: a tiny buildable one (`builder`) or a real checkpoint (`hub_id`)."""

    name: str
    family: str
    hub_id: str | None = None
    builder: str | None = None
    note: str = ""


PRESETS: dict[str, Preset] = {
    "tiny-minicpmv46": Preset("tiny-minicpmv46", "minicpmv4_6", builder="minicpmv4_6"),
    "tiny-llava-siglip": Preset("tiny-llava-siglip", "llava_siglip", builder="llava_siglip"),
    "base-minicpmv46": Preset(
        "base-minicpmv46",
        "minicpmv4_6",
        hub_id="openbmb/MiniCPM-V-4.6",
        note="SigLIP2 tower + 0.8B Qwen3.5 LLM; recommended edge default; 448 px slices",
    ),
    "base-llava-siglip": Preset(
        "base-llava-siglip",
        "llava_siglip",
        hub_id="llava-hf/llava-interleave-qwen-0.5b-hf",
        note="SigLIP-so400m (384 px, patch 14) + Qwen1.5-0.5B in transformers' LLaVA class",
    ),
    "base-minicpmv26": Preset(
        "base-minicpmv26",
        "minicpmv2_6",
        hub_id="openbmb/MiniCPM-V-2_6",
        note="upstream EIAD base; no transformers 5 class: see eiad/modeling/backbone/minicpmv26.py",
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ModelError(f"unknown backbone preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def default_cache_dir() -> Path:
    """Where tiny presets are built on demand: $EIAD_CACHE or ~/.cache/eiad, + /presets."""
    import os

    root = os.environ.get("EIAD_CACHE") or str(Path.home() / ".cache" / "eiad")
    return Path(root) / "presets"


def build_tiny_preset(name: str, out_dir: Path, seed: int = 0) -> Path:
    """Build preset `name` (a `tiny-*` one) into `out_dir` with `save_pretrained`; returns out_dir.

    Cache-friendly: when `out_dir` already holds this preset built with the same seed
    and loadable files, nothing is rebuilt. Not thread-safe for one `out_dir`.
    """
    preset = get_preset(name)
    if preset.builder is None:
        raise ModelError(f"preset {name!r} names a real checkpoint ({preset.hub_id}); only tiny-* presets are built")
    out_dir = Path(out_dir)
    marker = out_dir / _MARKER
    if marker.is_file() and (out_dir / "config.json").is_file():
        try:
            meta = json.loads(marker.read_text())
        except json.JSONDecodeError:
            meta = {}
        if meta == {"name": name, "family": preset.family, "seed": seed, "version": _BUILD_VERSION} and any(
            out_dir.glob("*.safetensors")
        ):
            log.debug("tiny preset %s already built in %s", name, out_dir)
            return out_dir
    import importlib

    import torch

    torch.manual_seed(seed)
    module = importlib.import_module(
        {"minicpmv4_6": "eiad.modeling.backbone.minicpmv46", "llava_siglip": "eiad.modeling.backbone.llava"}[
            preset.builder
        ]
    )
    model, processor = module.build_tiny()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    marker.write_text(
        json.dumps({"name": name, "family": preset.family, "seed": seed, "version": _BUILD_VERSION}, indent=2)
    )
    log.info("built tiny preset %s (%.1f MB) in %s", name, _size_mb(out_dir), out_dir)
    return out_dir


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file()) / 1e6
