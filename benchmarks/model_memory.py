"""Memory of the real checkpoints, for training and at the edge, counted from their architectures.

No real checkpoint can be downloaded on the development machines, so this builds each
supported model from its published configuration on PyTorch's meta device (shapes, no
weights, no memory), counts its parameters by part, and derives:

- training (the documented recipe: tower frozen, LoRA on the language model and projector,
  bf16 weights): frozen weights 2 B per parameter; each LoRA parameter 16 B (fp32 weight,
  gradient and AdamW's two moments); activations estimated for one sample with gradient
  checkpointing (bf16 layer inputs kept per LLM layer, plus fp32 logits for the loss);
- edge: the exported files (vision graph = tower + localization module; LLM decoder per
  precision, projector, embedding table) in bytes on disk, as `eiad export onnx|llm`
  writes them: fp32 4 B, fp16 2 B, int8 1 B per MatMul weight (`quantize_dynamic`), int4
  0.5 B plus an fp32 scale per block of 32 (`MatMulNBitsQuantizer`); parameters outside
  MatMuls (norms, convolutions, biases) stay fp32. The embedding table is memory-mapped
  at the edge: only the rows of the tokens in use are resident.

Run: python -m benchmarks.model_memory [--out benchmarks/results/model_memory]
Writes result.json and report.md there. Counts are exact for the architectures built;
the activation figure is an estimate and says so.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

GIB = 1024**3
INT4_BLOCK = 32
TEXT_TOKENS = 128  # prompt + answer tokens of one training sample besides the image
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
    inner = model.model
    parts = Parts(
        vision=_count(inner.vision_tower),
        projector=_count(inner.merger),
        embeddings=inner.language_model.get_input_embeddings().weight.numel(),
        lm_head_untied=0,
        total_published_model=1_300_428_016,
    )
    parts.llm_layers = _count(inner.language_model) - parts.embeddings
    parts.llm_matmul = _matmul_weights(inner.language_model)
    parts.lora = _lora_params(model, MiniCPMV46Backbone.lora_target_regex, LORA_RANK)
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
    inner = model.model
    parts = Parts(
        vision=_count(inner.vision_tower),
        projector=_count(inner.multi_modal_projector),
        embeddings=inner.language_model.get_input_embeddings().weight.numel(),
        total_published_model=864_031_264,
    )
    parts.llm_layers = _count(inner.language_model) - parts.embeddings
    parts.llm_matmul = _matmul_weights(inner.language_model)
    parts.lora = _lora_params(model, LlavaSiglipBackbone.lora_target_regex, LORA_RANK)
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


def memory(checkpoint: Checkpoint, parts: Parts, shape: dict, context_tokens: int = 512) -> dict:
    """Bytes for training and at the edge (see the module docstring for every rule)."""
    total = parts.vision + parts.projector + parts.llm_layers + parts.embeddings + parts.lm_head_untied
    tokens = checkpoint.image_tokens + TEXT_TOKENS
    training = {
        "weights_bf16": 2 * total,
        "lora_params": parts.lora,
        "lora_weights_grads_adamw_fp32": 16 * parts.lora,
        "localizer_weights_grads_adamw_fp32": 16 * parts.localizer,
        "activations_per_sample_estimate": 2 * shape["llm_hidden"] * tokens * shape["llm_layers"]
        + 4 * tokens * shape["vocab"],
        "sample_tokens": tokens,
    }
    training["total_batch1_estimate"] = (
        training["weights_bf16"]
        + training["lora_weights_grads_adamw_fp32"]
        + training["localizer_weights_grads_adamw_fp32"]
        + training["activations_per_sample_estimate"]
    )
    # The exported decoder holds the layers and the lm_head (a tied lm_head is a copy of the
    # embedding table); the input embedding table is a separate file.
    lm_head = parts.lm_head_untied or parts.embeddings
    matmul = parts.llm_matmul + lm_head
    other = parts.llm_layers - parts.llm_matmul
    decoder = {
        "fp32": 4 * (matmul + other),
        "int8": matmul + 4 * other,
        "int4": matmul // 2 + 4 * (matmul // INT4_BLOCK) + 4 * other,
    }
    vision_graph = parts.vision + parts.localizer
    edge = {
        "vision_graph": {"fp32": 4 * vision_graph, "fp16": 2 * vision_graph},
        "projector_fp32": 4 * parts.projector,
        "decoder": decoder,
        "embeddings_fp32_on_disk_mmap": 4 * parts.embeddings,
        "kv_cache_and_state_at_context": shape["kv_per_token_bytes"] * context_tokens + shape["recurrent_state_bytes"],
        "context_tokens": context_tokens,
    }
    edge["resident_int8_estimate"] = (
        edge["vision_graph"]["fp16"] + edge["projector_fp32"] + decoder["int8"] + edge["kv_cache_and_state_at_context"]
    )
    return {
        "checkpoint": asdict(checkpoint),
        "parameters": asdict(parts) | {"counted_total": total},
        "training_bytes": training,
        "edge_bytes": edge,
        "shape": shape,
    }


def _gib(value: int) -> str:
    return f"{value / GIB:.2f}"


def report(results: list[dict]) -> str:
    lines = [
        "# Memory of the real checkpoints (counted from their architectures)",
        "",
        "Command: `python -m benchmarks.model_memory` (result.json beside this file). Parameters are",
        "counted on models built from the published configurations on the meta device; bytes",
        "follow the rules in benchmarks/model_memory.py. GiB = 2^30 bytes.",
        "",
        "## Parameters (millions)",
        "",
        "| checkpoint | vision tower | projector | LLM layers | embeddings | lm_head (untied) | counted total "
        "| published | LoRA r=8 | localization module |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        p = r["parameters"]
        published = f"{p['total_published_model'] / 1e6:.1f}" if p["total_published_model"] else "-"
        lines.append(
            f"| {r['checkpoint']['hub_id']} | {p['vision'] / 1e6:.1f} | {p['projector'] / 1e6:.2f} | "
            f"{p['llm_layers'] / 1e6:.1f} | {p['embeddings'] / 1e6:.1f} | {p['lm_head_untied'] / 1e6:.1f} | "
            f"{p['counted_total'] / 1e6:.1f} | {published} | {p['lora'] / 1e6:.2f} | {p['localizer'] / 1e6:.2f} |"
        )
    lines += [
        "",
        "## Training, one GPU, batch 1 (GiB)",
        "",
        "Tower frozen, LoRA r=8 on the LLM (and projector), bf16 weights, gradient checkpointing.",
        "Activations are an estimate: bf16 layer inputs per LLM layer plus fp32 logits, for one",
        f"sample of image tokens + {TEXT_TOKENS} text tokens; each extra sample in a batch adds that much.",
        "",
        "| checkpoint | weights bf16 | LoRA + AdamW | localization + AdamW | activations / sample (est.) "
        "| total, batch 1 (est.) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        t = r["training_bytes"]
        lines.append(
            f"| {r['checkpoint']['hub_id']} | {_gib(t['weights_bf16'])} | {_gib(t['lora_weights_grads_adamw_fp32'])} "
            f"| {_gib(t['localizer_weights_grads_adamw_fp32'])} | {_gib(t['activations_per_sample_estimate'])} "
            f"({t['sample_tokens']} tokens) | {_gib(t['total_batch1_estimate'])} |"
        )
    lines += [
        "",
        "## Edge artifact (GiB on disk)",
        "",
        "Vision graph = tower + localization module. The embedding table is memory-mapped: only",
        "the rows of tokens in use become resident. KV cache / recurrent state in fp32 at the context shown.",
        "",
        "| checkpoint | vision fp32 | vision fp16 | projector | decoder fp32 | decoder int8 | decoder int4 "
        "| embeddings (mmap) | KV/state | resident with int8 LLM, fp16 vision (est.) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        e = r["edge_bytes"]
        lines.append(
            f"| {r['checkpoint']['hub_id']} | {_gib(e['vision_graph']['fp32'])} | {_gib(e['vision_graph']['fp16'])} | "
            f"{_gib(e['projector_fp32'])} | {_gib(e['decoder']['fp32'])} | {_gib(e['decoder']['int8'])} | "
            f"{_gib(e['decoder']['int4'])} | {_gib(e['embeddings_fp32_on_disk_mmap'])} | "
            f"{_gib(e['kv_cache_and_state_at_context'])} ({e['context_tokens']} tokens) | "
            f"{_gib(e['resident_int8_estimate'])} |"
        )
    lines += ["", "Image tokens per checkpoint:", ""]
    lines += [f"- {r['checkpoint']['hub_id']}: {r['checkpoint']['note']}" for r in results]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Parameters and memory (training and edge) of the supported real checkpoints, counted from "
        "their architectures built on the meta device (no download). Writes result.json and report.md."
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/model_memory"))
    args = parser.parse_args(argv)
    results = [memory(*build()) for build in (minicpmv46, llava_interleave, minicpmv26)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (args.out / "report.md").write_text(report(results), encoding="utf-8")
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
