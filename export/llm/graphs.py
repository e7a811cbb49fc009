"""Export the explainer's language model to ONNX: decoder + KV cache, projector, embeddings.

Path chosen (docs/export.md says why): our own `torch.onnx.export` of a thin wrapper
around the decoder that takes `inputs_embeds` (so the vision engine's precomputed
`vision_features`, projected, are spliced into the prompt with no second vision pass)
and the KV cache as explicit tensors `past_key.i` / `past_value.i` ->
`logits`, `present_key.i` / `present_value.i`. The edge runs it with plain ONNX Runtime
(edge/explainer/runtime.py, torch-free). Decoders with linear-attention layers (Qwen3.5 in
MiniCPM-V 4.6) carry a fixed-size recurrent state instead: they are exported as a
one-token step with explicit states (export/llm/recurrent.py, "recurrent" mode), and
the runtime feeds the prompt token by token. llm_config.json lists every state tensor.

Files written under `llm/` of the artifact:
    decoder_fp32.onnx (+ .data)  embed_tokens.npy  tokenizer.json  llm_config.json
    projector.onnx (when the model has one)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eiad.errors import ArtifactError, ModelError
from eiad.manifest import LLM_CONFIG, LLM_DECODER, LLM_EMBEDDINGS, LLM_PROJECTOR, LLM_TOKENIZER

log = logging.getLogger(__name__)

# the file names are the artifact contract (eiad/manifest.py)
DECODER, EMBEDDINGS, TOKENIZER, PROJECTOR = LLM_DECODER, LLM_EMBEDDINGS, LLM_TOKENIZER, LLM_PROJECTOR
_PROJECTOR_ATTRS = ("multi_modal_projector", "mm_projector", "projector", "connector")


@dataclass(frozen=True)
class LanguageModel:
    """The parts of a (V)LM the explainer needs, found by `split_language_model`."""

    decoder: object  # transformers base decoder: takes inputs_embeds, returns last_hidden_state
    lm_head: object
    embed: object  # nn.Embedding
    projector: object | None  # vision tokens (N,T,Dv) -> LLM embeddings (N,T',H), or None
    vision_dim: int | None


def split_language_model(hf_model, projector=None, vision_dim: int | None = None) -> LanguageModel:
    """Find decoder, lm_head, embeddings and projector in a CausalLM or a VLM (transformers 5 layout)."""
    inner = getattr(hf_model, "model", None)
    lm_head = getattr(hf_model, "lm_head", None)
    if inner is None or lm_head is None:
        raise ModelError(f"{type(hf_model).__name__} has no .model/.lm_head: not a causal or vision-language model")
    decoder = getattr(inner, "language_model", inner)
    if projector is None:
        for attr in _PROJECTOR_ATTRS:
            projector = getattr(inner, attr, None)
            if projector is not None:
                break
    if projector is not None and vision_dim is None:
        first = next((m for m in projector.modules() if hasattr(m, "in_features")), None)
        vision_dim = getattr(first, "in_features", None)
    return LanguageModel(decoder, lm_head, decoder.get_input_embeddings(), projector, vision_dim)


def cache_mode(config) -> str:
    """'kv' when every layer is attention (a KV cache), 'recurrent' for Qwen3.5-style hybrids."""
    from export.llm.recurrent import is_hybrid

    layer_types = list(getattr(config, "layer_types", None) or [])
    if all(t in ("full_attention", "sliding_attention") for t in layer_types):
        return "kv"
    if is_hybrid(config):
        return "recurrent"
    raise ModelError(
        f"decoder layer types {sorted(set(layer_types))} are not exportable here "
        "(supported: attention layers with a KV cache; Qwen3.5 linear + full attention)"
    )


def _dims(config) -> tuple[int, int, int, int]:
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim, config.hidden_size


def decoder_wrapper(lm: LanguageModel):
    """nn.Module: (inputs_embeds, attention_mask, position_ids, *past) -> (logits, *present), KV cache."""
    import torch
    from transformers import DynamicCache

    layers = _dims(lm.decoder.config)[0]

    class DecoderWithCache(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.decoder, self.lm_head = lm.decoder, lm.lm_head

        def forward(self, inputs_embeds, attention_mask, position_ids, *past):
            cache = DynamicCache(config=self.decoder.config)
            for i in range(layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.decoder(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=cache,
                use_cache=True,
            )
            present = []
            for layer in out.past_key_values.layers[:layers]:
                present += [layer.keys, layer.values]
            return (self.lm_head(out.last_hidden_state), *present)

    return DecoderWithCache().eval()


def kv_state_specs(config) -> list[dict]:
    layers, kv_heads, head_dim, _ = _dims(config)
    return [
        {"input": f"past_{part}.{i}", "output": f"present_{part}.{i}", "shape": [kv_heads, 0, head_dim], "grows": 1}
        for i in range(layers)
        for part in ("key", "value")
    ]


def _export_spec(lm: LanguageModel, mode: str):
    """(module, example args, input names, dynamic shapes, state specs) for the chosen cache mode."""
    import torch

    from export.llm.recurrent import RecurrentStep, state_specs

    config = lm.decoder.config
    hidden = config.hidden_size
    batch, seq, past_len = 2, (3 if mode == "kv" else 1), 4  # example sizes >= 2 so no axis is specialised
    b, p = torch.export.Dim("batch"), torch.export.Dim("past")
    specs = kv_state_specs(config) if mode == "kv" else state_specs(config)
    states, state_shapes = [], []
    for spec in specs:
        shape = list(spec["shape"])
        if "grows" in spec:
            shape[spec["grows"]] = past_len
        states.append(torch.randn(batch, *shape))
        state_shapes.append({0: b, 1 + spec["grows"]: p} if "grows" in spec else {0: b})
    embeds = torch.randn(batch, seq, hidden)
    positions = torch.arange(past_len, past_len + seq).expand(batch, seq).contiguous()
    if mode == "kv":
        s, t = torch.export.Dim("seq"), torch.export.Dim("total")
        mask = torch.ones(batch, past_len + seq, dtype=torch.int64)
        args = (embeds, mask, positions, *states)
        names = ["inputs_embeds", "attention_mask", "position_ids"]
        shapes = {
            "inputs_embeds": {0: b, 1: s},
            "attention_mask": {0: b, 1: t},
            "position_ids": {0: b, 1: s},
            "past": tuple(state_shapes),
        }
        return decoder_wrapper(lm), args, names, shapes, specs
    names = ["inputs_embeds", "position_ids"]  # one token per run: no mask needed (nothing is padded)
    shapes = {"inputs_embeds": {0: b}, "position_ids": {0: b}, "states": tuple(state_shapes)}
    return RecurrentStep(lm.decoder, lm.lm_head).eval(), (embeds, positions, *states), names, shapes, specs


def export_decoder(lm: LanguageModel, path: Path, opset: int = 18) -> dict:
    """Export the decoder to `path`; returns the llm_config fields describing its I/O."""
    import torch

    mode = cache_mode(lm.decoder.config)
    layers, kv_heads, head_dim, hidden = _dims(lm.decoder.config)
    module, args, names, shapes, specs = _export_spec(lm, mode)
    started = time.perf_counter()
    try:
        with torch.no_grad():
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=True,
                opset_version=opset,
                input_names=names + [s["input"] for s in specs],
                output_names=["logits"] + [s["output"] for s in specs],
                dynamic_shapes=shapes,
                external_data=True,
                verbose=False,
            )
    except Exception as error:  # noqa: BLE001 - name the step, keep the cause
        raise ArtifactError(
            f"ONNX export of the language model failed ({mode} mode): {type(error).__name__}: {error}"
        ) from error
    log.info("decoder exported in %.1f s (%s cache, %d layers)", time.perf_counter() - started, mode, layers)
    return {
        "cache": mode,
        "prefill": "full" if mode == "kv" else "stepwise",
        "states": specs,
        "num_layers": layers,
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_size": hidden,
    }


def export_projector(lm: LanguageModel, path: Path, opset: int = 18, vision_tokens: int | None = None) -> None:
    """Projector graph: vision_features (N, T, D) -> vision_embeds (N, T', H); T fixed when given."""
    import torch

    if lm.vision_dim is None:
        raise ModelError("the projector's input width is unknown: pass vision_dim")
    example = torch.randn(2, vision_tokens or 5, lm.vision_dim)
    n, t = torch.export.Dim("batch"), torch.export.Dim("tokens")
    shapes = ({0: n},) if vision_tokens else ({0: n, 1: t},)
    try:
        with torch.no_grad():
            torch.onnx.export(
                lm.projector.eval(),
                (example,),
                str(path),
                dynamo=True,
                opset_version=opset,
                input_names=["vision_features"],
                output_names=["vision_embeds"],
                dynamic_shapes=shapes,
                external_data=False,
                verbose=False,
            )
    except Exception as error:  # noqa: BLE001
        raise ArtifactError(f"ONNX export of the projector failed: {type(error).__name__}: {error}") from error


def projector_module(backbone):
    """nn.Module around `EiadBackbone.project_vision` (the family's projector/merger at the spec size)."""
    import torch

    class VisionProjector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone

        def forward(self, tokens):
            return self.backbone.project_vision(tokens)

    return VisionProjector().eval()


def prompt_template(tokenizer_json: Path) -> list[str]:
    """(text before the image tokens, text after them with {prompt}): ChatML when the tokenizer has it."""
    vocab = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    specials = {t.get("content") for t in vocab.get("added_tokens", [])}
    if {"<|im_start|>", "<|im_end|>"} <= specials:
        return ["<|im_start|>user\n", "\n{prompt}<|im_end|>\n<|im_start|>assistant\n"]
    return ["", "\n{prompt}\n"]


def export_language_model(
    hf_model,
    tokenizer_json: Path,
    llm_dir: Path,
    opset: int = 18,
    projector=None,
    vision_dim: int | None = None,
    vision_tokens: int | None = None,
    template: tuple[str, str] | None = None,
) -> dict[str, str]:
    """Write the fp32 LLM parts into `llm_dir`; returns `{file name: role}` for the manifest."""
    import shutil

    lm = split_language_model(hf_model, projector, vision_dim)
    llm_dir.mkdir(parents=True, exist_ok=True)
    decoder_path = llm_dir / DECODER.format(precision="fp32")
    config = export_decoder(lm, decoder_path, opset)
    roles = {decoder_path.name: "llm_decoder_fp32"}
    data = decoder_path.with_name(decoder_path.name + ".data")
    if data.is_file():
        roles[data.name] = "llm_decoder_fp32_data"
    # Embedding lookup is a gather: numpy does it on the edge; keeping it out of the graph
    # keeps the table out of int4/int8 quantization, which would hurt every token.
    np.save(llm_dir / EMBEDDINGS, lm.embed.weight.detach().float().cpu().numpy())
    roles[EMBEDDINGS] = "llm_embeddings"
    shutil.copyfile(tokenizer_json, llm_dir / TOKENIZER)
    roles[TOKENIZER] = "llm_tokenizer"
    if lm.projector is not None:
        export_projector(lm, llm_dir / PROJECTOR, opset, vision_tokens)
        roles[PROJECTOR] = "llm_projector"
    text_config = lm.decoder.config
    eos = getattr(text_config, "eos_token_id", None) or getattr(hf_model.config, "eos_token_id", None)
    config.update(
        vocab_size=int(lm.embed.weight.shape[0]),
        vision_dim=lm.vision_dim,
        has_projector=lm.projector is not None,
        eos_token_ids=[eos] if isinstance(eos, int) else list(eos or []),
        precisions=["fp32"],
        prompt_template=list(template) if template else prompt_template(tokenizer_json),
        vision_tokens=vision_tokens,
    )
    (llm_dir / LLM_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    roles[LLM_CONFIG] = "llm_config"
    return roles
