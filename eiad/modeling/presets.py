"""Backbone presets: tiny random models built from configs, and the real checkpoints.

`tiny-*` presets are a few MB, built offline from a config plus a tiny BPE tokenizer
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

# ChatML turns; the image is a content part of the user turn, rendered as the family's
# image placeholder (the processor expands it to the right number of image tokens).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}IMAGE_TOKEN\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_SIZE_PX = 224
TINY_PATCH_PX = 14
# A random LLM's output logits are bounded by |lm_head row| * |final-norm output|; at the
# usual 0.02 init and width 64 that caps answer probabilities near uniform, so LoRA (which
# leaves lm_head alone) cannot fit even one answer. 0.2 lets logits reach ~10.
TEXT_INIT_STD = 0.2
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


def _corpus() -> list[str]:
    # Words the DDQA prompts, answers and grounded prompts use, so the tiny tokenizer
    # encodes them in few tokens; the rest falls back to bytes.
    words = (
        "Is there any visible defect in this image? Options: A. No B. Yes C. D. Answer with the "
        "option's letter from the given choices directly. What type is the defect? Where is the "
        "defect? top left top right bottom left bottom right Find the defect and give its bounding "
        "box [0.125, 0.250, 0.875, 0.500] scratch crack hole stain dent contamination missing part "
        "The localization module found a defect class confidence located at region box normalised "
        "coordinates explain what is wrong with the part and why it was rejected no defect was found "
        "good OK NG user assistant system"
    )
    # The defect description (eiad/description/sentences.py) and the grounded prompt's findings.
    description = (
        "The part has a There is a This part shows a A is visible in the of the image located in the "
        "image's centre near the centre at the centre close to the image border near the edge at the "
        "edge separate regions split into spread over regions It is Its size is tiny small medium large "
        "it covers about of the image pixels elongated compact in shape of an elongated shape a compact "
        "shape darker brighter than the surface around it its surroundings the area around it as bright "
        "as roughly so the part is rejected as defective which is why the part was rejected does not "
        "pass inspection No defect is visible the surface looks normal and the part is good passes "
        "uniform accepted missing material pitting inspection module anomaly score unknown marked "
        "Describe the for the operator in one sentence what it is where how big its how it looks Tell "
        "the operator whether has % 0.1 0.4 1.0 2.5 10.0 12 345 6789"
    )
    digits = " ".join(f"0.{i:03d}" for i in range(0, 1000, 7))
    return [words, description, digits, "0 1 2 3 4 5 6 7 8 9 , . [ ] ( ) : ? ! ' \" - _ / \n"] * 4


def train_tokenizer(special_tokens: list[str], vocab_size: int = 1000, **tokenizer_kwargs):
    """A tiny byte-level BPE trained offline on `_corpus()`, wrapped as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **tokenizer_kwargs)


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
