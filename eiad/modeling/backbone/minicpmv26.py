"""MiniCPM-V-2.6 (upstream EIAD's base): the documented path under transformers 5.

transformers 5 has no class for it (`model_type: minicpmv`) and its hub remote code is
written for transformers ~4.40. The project splits it along the line EIAD itself draws:

1. Vision side, native here: its tower (`vpm.*`) is a SigLIP-so400m in Idefics2 naming
   (NaViT position table of 70x70, nearest-bucket lookup). `load_vision_tower` maps those
   keys onto transformers' `SiglipVisionModel` and `MiniCPMV26Vision` runs it at a fixed
   448x448 slice with precomputed position ids: that is what the localization module
   reads and what export turns into ONNX. Key mapping and the forward are tested on
   synthetic tiny state dicts; the real checkpoint is not available on the test machine.
2. Language side (chat, LoRA): its remote code in a pinned side environment,
   `requirements/minicpmv26.txt` (transformers==4.40.0), as upstream did with ms-swift 2.x;
   `chat_remote` runs there. Untested here (no weights, no hub, transformers 5 installed).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from eiad.errors import ModelError
from eiad.preprocess import PreprocessSpec

log = logging.getLogger(__name__)

HUB_ID = "openbmb/MiniCPM-V-2_6"
# One 448 px slice, normalised with mean/std 0.5 (its image processor's values).
SPEC = PreprocessSpec(448, 448, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def unsupported_here(where: str) -> ModelError:
    return ModelError(
        f"{where}: MiniCPM-V-2.6 has no transformers 5 class. For its vision tower (localization, export) use "
        "eiad.modeling.backbone.minicpmv26.load_vision_tower(DIR); for chat/LoRA use its remote code in the side "
        "environment `pip install -r requirements/minicpmv26.txt` (see docs/model.md, 'MiniCPM-V-2.6')."
    )


@dataclass(frozen=True)
class MiniCPMV26Info:
    """What the 2.6 config says about its parts (widths in features, sizes in px)."""

    vision_hidden_size: int
    vision_layers: int
    vision_heads: int
    vision_intermediate_size: int
    patch_size: int
    position_grid: int
    query_num: int
    text_hidden_size: int
    slice_px: int


def parse_config(config: dict) -> MiniCPMV26Info:
    """Read a MiniCPM-V-2.6 config.json dict; ModelError naming the missing key."""
    if config.get("model_type") != "minicpmv":
        raise ModelError(f"config model_type is {config.get('model_type')!r}, expected 'minicpmv' (MiniCPM-V-2.6)")
    try:
        vision = config["vision_config"]
        return MiniCPMV26Info(
            vision_hidden_size=int(vision["hidden_size"]),
            vision_layers=int(vision["num_hidden_layers"]),
            vision_heads=int(vision["num_attention_heads"]),
            vision_intermediate_size=int(vision["intermediate_size"]),
            patch_size=int(vision["patch_size"]),
            position_grid=int(vision["image_size"]) // int(vision["patch_size"]),
            query_num=int(config.get("query_num", 64)),
            text_hidden_size=int(config["hidden_size"]),
            slice_px=int(config.get("slice_config", {}).get("scale_resolution", 448)),
        )
    except KeyError as exc:
        raise ModelError(f"MiniCPM-V-2.6 config.json: missing key {exc}") from exc


def map_vision_keys(state_dict: dict, *, strict: bool = True) -> dict:
    """Checkpoint keys `vpm.<x>` -> transformers 5 `SiglipVisionModel` keys `<x>`; other keys dropped.

    The 2.6 tower has no pooling head; the drop of the last layer some configs ask for
    (`drop_vision_last_layer`) is left to the caller's choice of layers.
    """
    out = {}
    for key, value in state_dict.items():
        if key.startswith("vpm."):
            out[key[len("vpm.") :]] = value
    if not out and strict:
        raise ModelError("no 'vpm.*' keys in the state dict: is this a MiniCPM-V-2.6 checkpoint?")
    return out


def vision_config(info: MiniCPMV26Info):
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(
        hidden_size=info.vision_hidden_size,
        intermediate_size=info.vision_intermediate_size,
        num_hidden_layers=info.vision_layers,
        num_attention_heads=info.vision_heads,
        image_size=info.position_grid * info.patch_size,
        patch_size=info.patch_size,
        vision_use_head=False,
    )


def load_vision_tower(model_dir: Path, spec: PreprocessSpec = SPEC):
    """The 2.6 vision tower from a local checkpoint directory, as a `MiniCPMV26Vision`."""
    from safetensors.torch import load_file
    from transformers import SiglipVisionModel

    model_dir = Path(model_dir)
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise ModelError(f"{model_dir}: no config.json; download {HUB_ID} there first")
    info = parse_config(json.loads(cfg_path.read_text()))
    shards = sorted(model_dir.glob("*.safetensors"))
    if not shards:
        raise ModelError(f"{model_dir}: no *.safetensors shards (only safetensors are read, never pickles)")
    state = {}
    for shard in shards:
        state.update(map_vision_keys(load_file(str(shard)), strict=False))  # LLM-only shards map to {}
    tower = SiglipVisionModel(vision_config(info))
    missing, unexpected = tower.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"{model_dir}: vision keys do not fit SigLIP: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    from eiad.modeling.backbone.minicpmv26_vision import MiniCPMV26Vision

    return MiniCPMV26Vision(tower, spec)


def chat_remote(model_dir: Path, image, question: str, max_new_tokens: int = 64) -> str:
    """Answer with the real 2.6 through its remote code. Runs only in the side environment
    (requirements/minicpmv26.txt); untested on the project's machine."""
    import transformers
    from transformers import AutoModel, AutoTokenizer

    if not transformers.__version__.startswith("4.40"):
        raise ModelError(
            f"chat_remote needs transformers 4.40.x (found {transformers.__version__}); "
            "pip install -r requirements/minicpmv26.txt in a separate venv"
        )
    model = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    msgs = [{"role": "user", "content": [image, question]}]
    return model.chat(image=None, msgs=msgs, tokenizer=tokenizer, max_new_tokens=max_new_tokens)
