"""Bytes for training and at the edge from a checkpoint's parameter counts, and the report."""

from __future__ import annotations

from dataclasses import asdict

from benchmarks.model_memory.checkpoints import Checkpoint, Parts

GIB = 1024**3
INT4_BLOCK = 32
TEXT_TOKENS = 128  # prompt + answer tokens of one training sample besides the image


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
        "follow the rules in benchmarks/model_memory/__init__.py. GiB = 2^30 bytes.",
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
