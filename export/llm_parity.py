"""`eiad export llm`: export, quantize and prove the language model against PyTorch.

Parity: for each prompt of a fixed set, greedy decoding in PyTorch (full recompute, no
cache: an independent reference for the exported KV-cache path) and in ONNX Runtime
(edge/llm_runtime.py, the code the edge runs) must give the same tokens. Gate: fp32 and
int8 match on >= 95 % of the evaluated prompts (MIN_MATCH); int4 is reported, not gated.
A random model has near-tied logits that any rounding flips, so prompts can be limited
to those whose fp32 top-1 margin is at least `min_margin` at every step (the
margin is recorded per prompt); a trained model needs no filter.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from eiad.errors import ArtifactError

log = logging.getLogger(__name__)

MIN_MATCH = 0.95
PARITY_FILE = "parity_llm.json"
DEFAULT_PROMPTS = tuple(
    f"Inspection of part {i}: verdict {v}, defect {d} at the {loc}. Explain the defect."
    for i, (v, d, loc) in enumerate(
        [(v, d, loc) for v in ("NG", "OK") for d in ("crack", "hole", "scratch", "stain", "none")
         for loc in ("top left", "centre", "bottom right")]
    )
)[:20]


@dataclass(frozen=True)
class PrecisionReport:
    precision: str
    match_rate: float
    evaluated: int
    size_bytes: int
    tokens_per_s: float


def torch_greedy(lm, prompt_ids: list[int], max_new_tokens: int, eos: set[int]) -> tuple[list[int], float]:
    """Greedy tokens from the PyTorch decoder (no cache) and the smallest top-1 logit margin seen."""
    import torch

    ids = list(prompt_ids)
    out: list[int] = []
    margin = float("inf")
    with torch.no_grad():
        for _ in range(max_new_tokens):
            embeds = lm.embed(torch.tensor([ids]))
            hidden = lm.decoder(inputs_embeds=embeds, use_cache=False).last_hidden_state
            logits = lm.lm_head(hidden)[0, -1]
            top2 = torch.topk(logits, 2).values
            margin = min(margin, float(top2[0] - top2[1]))
            token = int(torch.argmax(logits))
            if token in eos:
                break
            out.append(token)
            ids.append(token)
    return out, margin


def measure(llm_dir: Path, precision: str, prompts: list[list[int]], refs: list[list[int]], max_new: int):
    """(match rate, tokens/s) of the ORT runtime at `precision` against the reference tokens."""
    from edge.llm_runtime import LlmRuntime

    runtime = LlmRuntime(llm_dir, precision)
    matches, tokens, seconds = 0, 0, 0.0
    for ids, ref in zip(prompts, refs):
        generation = runtime.generate_ids(ids, max_new)
        matches += list(generation.token_ids) == ref
        tokens += len(generation.token_ids)
        seconds += generation.seconds
    return matches / max(1, len(prompts)), tokens / seconds if seconds else 0.0


def run_parity(hf_model, llm_dir: Path, precisions: list[str], prompts: list[str], max_new_tokens: int = 16,
               min_margin: float = 0.0) -> dict:
    """Compare every exported precision with PyTorch; raise ArtifactError past MIN_MATCH."""
    from tokenizers import Tokenizer

    from export.llm_export import split_language_model

    lm = split_language_model(hf_model)
    config = json.loads((llm_dir / "llm_config.json").read_text())
    tokenizer = Tokenizer.from_file(str(llm_dir / "tokenizer.json"))
    eos = set(config["eos_token_ids"])
    encoded = [tokenizer.encode(p, add_special_tokens=False).ids for p in prompts]
    refs, margins = zip(*(torch_greedy(lm, ids, max_new_tokens, eos) for ids in encoded))
    keep = [i for i, m in enumerate(margins) if m >= min_margin]
    if not keep:
        raise ArtifactError(f"no parity prompt has an fp32 top-1 margin >= {min_margin}: lower --parity-min-margin")
    reports = []
    for precision in precisions:
        rate, speed = measure(llm_dir, precision, [encoded[i] for i in keep], [refs[i] for i in keep], max_new_tokens)
        size = sum(p.stat().st_size for p in llm_dir.glob(f"decoder_{precision}.onnx*"))
        reports.append(PrecisionReport(precision, rate, len(keep), size, speed))
        log.info("LLM %s: %.0f%% of %d prompts match torch, %.1f MB, %.0f tokens/s", precision, 100 * rate,
                 len(keep), size / 1e6, speed)
    result = {
        "prompts": len(prompts), "evaluated": len(keep), "min_margin": min_margin,
        "max_new_tokens": max_new_tokens, "margins": list(margins), "min_match": MIN_MATCH,
        "precisions": [asdict(r) for r in reports],
    }
    (llm_dir / PARITY_FILE).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    failed = [r for r in reports if r.precision in ("fp32", "int8") and r.match_rate < MIN_MATCH]
    if failed:
        raise ArtifactError(
            "LLM parity failed: " + "; ".join(f"{r.precision} matches torch on {r.match_rate:.0%} of {r.evaluated} prompts"
                                             for r in failed)
            + f" (needs {MIN_MATCH:.0%}). See {llm_dir / PARITY_FILE}"
        )
    return result


def export_llm_artifact(hf_model, tokenizer_json: Path, artifact_dir: Path, precisions: list[str],
                        prompts: list[str] | None = None, opset: int = 18, max_new_tokens: int = 16,
                        min_margin: float = 0.0, projector=None, vision_dim: int | None = None) -> dict:
    """Add `llm/` (fp32 + quantized decoders, parity report) to an existing artifact's manifest."""
    import shutil

    from export.artifact import add_files, existing_artifact, inside
    from export.llm_export import LLM_CONFIG, LLM_DIR, export_language_model
    from export.llm_quantize import QUANTIZERS

    unknown = [p for p in precisions if p not in ("fp32", *QUANTIZERS)]
    if unknown:
        raise ArtifactError(f"unknown LLM precision(s) {unknown}: choose from fp32, int8, int4")
    artifact_dir = existing_artifact(artifact_dir)
    llm_dir = inside(artifact_dir, LLM_DIR)
    shutil.rmtree(llm_dir, ignore_errors=True)  # a re-export replaces the whole LLM part
    roles = export_language_model(hf_model, tokenizer_json, llm_dir, opset, projector, vision_dim)
    fp32 = llm_dir / "decoder_fp32.onnx"
    for precision in [p for p in precisions if p != "fp32"]:
        QUANTIZERS[precision](fp32, llm_dir / f"decoder_{precision}.onnx")
        roles[f"decoder_{precision}.onnx"] = f"llm_decoder_{precision}"
    config = json.loads((llm_dir / LLM_CONFIG).read_text())
    config["precisions"] = ["fp32", *[p for p in precisions if p != "fp32"]]
    (llm_dir / LLM_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    result = run_parity(hf_model, llm_dir, config["precisions"], list(prompts or DEFAULT_PROMPTS), max_new_tokens, min_margin)
    roles[PARITY_FILE] = "llm_parity_report"
    add_files(artifact_dir, {f"{LLM_DIR}/{name}": role for name, role in roles.items()}, drop_prefix=f"{LLM_DIR}/")
    return result
