"""The supported real checkpoints built from their published configurations on the meta
device (shapes, no weights), their parameters counted by part."""

from __future__ import annotations

import re
from dataclasses import dataclass

LORA_RANK = 8  # DialogConfig's default rank
# The localization module as `eiad train` builds it by default (train/config.py's
# LocalizationConfig; a test keeps the two equal; benchmarks do not import the trainer).
LOCALIZER_TAPS = 4
LOCALIZER_OPTIONS = {
    "proj_dim": 64,
    "feature_channels": 16,
    "decoder_channels": 32,
    "stem": True,
    "fine": True,
    "mask_pooling": True,
    "class_maps": True,
    "context": True,
}


@dataclass(frozen=True)
class Checkpoint:
    preset: str
    hub_id: str
    image_px: int
    image_tokens: int  # LLM tokens one image becomes (as the edge prompts it)
    note: str


@dataclass
class Parts:
    vision: int = 0
    projector: int = 0
    llm_layers: int = 0
    llm_matmul: int = 0  # the decoder layers' Linear weights (what int8/int4 quantize, with the lm_head)
    embeddings: int = 0
    lm_head_untied: int = 0
    lora: int = 0
    localizer: int = 0
    total_published_model: int = 0  # the checkpoint's safetensors total on the hub, where known


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _lora_params(model, regex: str, rank: int) -> int:
    import torch

    total = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and re.fullmatch(regex, name):
            total += rank * (module.in_features + module.out_features)
    return total


def _matmul_weights(module) -> int:
    import torch

    return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))


def _localizer_params(vision_hidden: int, text_hidden: int, image_px: int, patch: int) -> int:
    """The localization module as `eiad train` builds it by default, at the checkpoint's widths."""
    import torch

    from eiad.modeling.localization import DefectLocalizer, LocalizerSpec, default_prompts

    classes = ("crack", "scratch", "hole", "stain", "missing_material")
    prompts = tuple(default_prompts(classes))
    grid = image_px // patch
    spec = LocalizerSpec(
        vision_hidden_size=vision_hidden,
        text_hidden_size=text_hidden,
        grid=(grid, grid),
        image_size=(image_px, image_px),
        taps=tuple(range(LOCALIZER_TAPS)),
        class_names=classes,
        prompts=prompts,
        **LOCALIZER_OPTIONS,
    )
    return _count(DefectLocalizer(spec, torch.zeros(len(prompts), text_hidden)))


def _vlm_parts(model, projector, lora_regex: str, published: int) -> Parts:
    """Parts of a transformers vision-language model (`model.model` with `vision_tower` and
    `language_model`; a tied lm_head)."""
    inner = model.model
    embeddings = inner.language_model.get_input_embeddings().weight.numel()
    return Parts(
        vision=_count(inner.vision_tower),
        projector=_count(projector),
        llm_layers=_count(inner.language_model) - embeddings,
        llm_matmul=_matmul_weights(inner.language_model),
        embeddings=embeddings,
        lora=_lora_params(model, lora_regex, LORA_RANK),
        total_published_model=published,
    )


def minicpmv46() -> tuple[Checkpoint, Parts, dict]:
    """openbmb/MiniCPM-V-4.6: SigLIP2-400M tower + Qwen3.5-0.8B (hybrid linear/full attention)."""
    import torch
    from transformers import MiniCPMV4_6Config, MiniCPMV4_6ForConditionalGeneration

    from eiad.modeling.backbone.minicpmv46 import MiniCPMV46Backbone

    layer_types = ["linear_attention", "linear_attention", "linear_attention", "full_attention"] * 6
    text = {
        "model_type": "qwen3_5_text",
        "vocab_size": 248094,
        "hidden_size": 1024,
        "intermediate_size": 3584,
        "num_hidden_layers": 24,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 256,
        "layer_types": layer_types,
        "linear_num_key_heads": 16,
        "linear_num_value_heads": 16,
        "linear_key_head_dim": 128,
        "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4,
        "tie_word_embeddings": True,
        "attn_output_gate": True,
        "partial_rotary_factor": 0.25,
    }
    vision = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16}
    vision.update({"image_size": 980, "patch_size": 14})
    config = MiniCPMV4_6Config(text_config=text, vision_config=vision, insert_layer_id=6, image_size=1120)
    config.tie_word_embeddings = True
    with torch.device("meta"):
        model = MiniCPMV4_6ForConditionalGeneration(config)
    parts = _vlm_parts(model, model.model.merger, MiniCPMV46Backbone.lora_target_regex, 1_300_428_016)
    parts.localizer = _localizer_params(1152, 1024, 448, 14)
    shape = {"llm_hidden": 1024, "llm_layers": 24, "vocab": 248094, "full_attention_layers": 6}
    shape["kv_per_token_bytes"] = 6 * 2 * 2 * 256 * 4  # full-attention layers x (K,V) x kv heads x head dim x fp32
    shape["recurrent_state_bytes"] = 18 * (16 * 128 * 128 + (2 * 16 * 128 + 16 * 128) * 4) * 4
    checkpoint = Checkpoint(
        "base-minicpmv46",
        "openbmb/MiniCPM-V-4.6",
        448,
        64,
        "448 px slice: 32x32 patches, 16x downsampled by the merger to 64 LLM tokens",
    )
    return checkpoint, parts, shape


def llava_interleave() -> tuple[Checkpoint, Parts, dict]:
    """llava-hf/llava-interleave-qwen-0.5b-hf: SigLIP-so400m (26 layers used) + Qwen1.5-0.5B."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    from eiad.modeling.backbone.llava import LlavaSiglipBackbone

    vision = {"model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304}
    vision.update({"num_hidden_layers": 26, "num_attention_heads": 16, "image_size": 384, "patch_size": 14})
    vision["vision_use_head"] = False  # LLaVA takes the patch tokens; the checkpoint has no pooling head
    text = {"model_type": "qwen2", "vocab_size": 152000, "hidden_size": 1024, "intermediate_size": 2816}
    text.update({"num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 16})
    text["tie_word_embeddings"] = True
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        projector_hidden_act="gelu",
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    parts = _vlm_parts(model, model.model.multi_modal_projector, LlavaSiglipBackbone.lora_target_regex, 864_031_264)
    parts.localizer = _localizer_params(1152, 1024, 378, 14)
    shape = {"llm_hidden": 1024, "llm_layers": 24, "vocab": 152000, "full_attention_layers": 24}
    shape["kv_per_token_bytes"] = 24 * 2 * 16 * 64 * 4
    shape["recurrent_state_bytes"] = 0
    checkpoint = Checkpoint(
        "base-llava-siglip",
        "llava-hf/llava-interleave-qwen-0.5b-hf",
        384,
        729,
        "384 px: 27x27 patches, one LLM token each",
    )
    return checkpoint, parts, shape


def minicpmv26() -> tuple[Checkpoint, Parts, dict]:
    """openbmb/MiniCPM-V-2_6: SigLIP-400M tower + resampler (64 queries) + Qwen2-7B."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel

    vision_cfg = SiglipVisionConfig(
        hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16, patch_size=14
    )
    vision_cfg.image_size = 980
    vision_cfg.vision_use_head = False
    text_cfg = Qwen2Config(
        vocab_size=151666,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):
        tower = SiglipVisionModel(vision_cfg)
        llm = Qwen2ForCausalLM(text_cfg)
    width, queries, kv_width = 3584, 64, 1152
    # The resampler (its remote code): learnt queries, kv projection, one multi-head attention,
    # three LayerNorms and an output projection.
    resampler = queries * width + kv_width * width + (3 * width * width + 3 * width) + (width * width + width)
    resampler += 3 * 2 * width + width * width
    decoder = llm.model
    lm_head = llm.lm_head.weight.numel()
    parts = Parts(
        vision=_count(tower),
        projector=resampler,
        embeddings=decoder.get_input_embeddings().weight.numel(),
        lm_head_untied=lm_head,
        total_published_model=0,
    )
    parts.llm_layers = _count(decoder) - parts.embeddings
    parts.llm_matmul = _matmul_weights(decoder)
    lora_regex = r".*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    parts.lora = _lora_params(llm, lora_regex, LORA_RANK)
    parts.localizer = _localizer_params(1152, 3584, 448, 14)
    shape = {"llm_hidden": 3584, "llm_layers": 28, "vocab": 151666, "full_attention_layers": 28}
    shape["kv_per_token_bytes"] = 28 * 2 * 4 * 128 * 4
    shape["recurrent_state_bytes"] = 0
    checkpoint = Checkpoint(
        "base-minicpmv26",
        "openbmb/MiniCPM-V-2_6",
        448,
        64,
        "448 px slice -> 64 resampler queries; the chat runs in its own environment (side path)",
    )
    return checkpoint, parts, shape
