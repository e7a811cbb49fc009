"""The language model's parity with PyTorch, the gate of `eiad export llm` (export/llm/exporter.py).

Parity: for each prompt of a fixed set (DDQA questions with their images, `--ddqa`, or
text prompts), greedy decoding in PyTorch (full recompute, no cache: an independent
reference for the exported KV-cache / recurrent-state path) and in ONNX Runtime
(edge/explainer/runtime.py, the code the edge runs) must give the same tokens. Gate: fp32 and
int8 match on >= 95 % of the evaluated prompts (MIN_MATCH); int4 is reported, not gated.
A near tie in fp32's logits (a random model everywhere; a trained one where two wordings
are equally likely) is flipped by any rounding, and after a flip free decodings diverge
into different sentences. So the gate is teacher-forced: torch's answer is fed to the
runtime token by token and the runtime's choice must equal torch's at every step whose
fp32 top-1 margin is >= `min_margin` (default 0: every step); a prompt with no such step
is excluded. Every step's margin and every prompt's compared steps are recorded; the free
answers of each precision are kept for reading.
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
        [
            (v, d, loc)
            for v in ("NG", "OK")
            for d in ("crack", "hole", "scratch", "stain", "none")
            for loc in ("top left", "centre", "bottom right")
        ]
    )
)[:20]


@dataclass(frozen=True)
class PrecisionReport:
    precision: str
    match_rate: float
    evaluated: int
    size_bytes: int
    tokens_per_s: float  # generated tokens / wall time of generate(), prefill included
    prefill_ms_mean: float  # prompt processing per prompt


@dataclass(frozen=True)
class ParityPrompt:
    """A question, optionally about an image (then the vision engine's features go into the prompt)."""

    label: str
    question: str
    image: Path | None = None


def ddqa_prompts(path: Path, limit: int) -> list[ParityPrompt]:
    """`limit` records of a DDQA jsonl, spread evenly over the file. For an `eiad data ddqa`
    folder: its test split's description task (`test/Task_DD.jsonl`: free-form sentences,
    the kind of answer the explainer generates), else `test/test.jsonl`."""
    from eiad.dialog_records import read_ddqa

    path = Path(path)
    if path.is_dir():
        candidates = (path / "test" / "Task_DD.jsonl", path / "test" / "test.jsonl", path / "test.jsonl")
        path = next((c for c in candidates if c.is_file() and c.stat().st_size), path / "test" / "test.jsonl")
    records = read_ddqa(path)
    if len(records) > limit:  # every part type and class, not the file's first few images
        step = len(records) / limit
        records = [records[int(i * step)] for i in range(limit)]
    return [ParityPrompt(r.where, r.question.replace("<image>", "").strip(), r.image) for r in records]


def torch_greedy(lm, prompt_ids: list[int], max_new_tokens: int, eos: set[int]) -> tuple[list[int], list[float]]:
    """Greedy tokens from the PyTorch decoder (no cache) and the top-1 logit margin of every step."""
    import torch

    with torch.no_grad():
        return torch_greedy_embeds(lm, lm.embed(torch.tensor([prompt_ids])), max_new_tokens, eos)


def torch_greedy_embeds(lm, embeds, max_new_tokens: int, eos: set[int]) -> tuple[list[int], list[float]]:
    """Greedy decoding from (1, S, H) prompt embeddings, whole sequence recomputed per token (no
    cache); returns the tokens and each step's top-1 margin (the last one decided end of turn
    when it is one longer than the tokens)."""
    import torch

    out: list[int] = []
    margins: list[float] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            hidden = lm.decoder(inputs_embeds=embeds, use_cache=False).last_hidden_state
            logits = lm.lm_head(hidden)[0, -1]
            top2 = torch.topk(logits, 2).values
            margins.append(float(top2[0] - top2[1]))
            token = int(torch.argmax(logits))
            if token in eos:
                break
            out.append(token)
            embeds = torch.cat([embeds, lm.embed(torch.tensor([[token]]))], dim=1)
    return out, margins


def confident_steps(step_margins: list[float], min_margin: float) -> list[int]:
    """The decoding steps whose fp32 top-1 logit margin is >= min_margin."""
    return [step for step, margin in enumerate(step_margins) if margin >= min_margin]


def agrees_with_reference(choices: list[int], reference: list[int], steps: list[int], eos: set[int]) -> bool:
    """Whether the runtime's teacher-forced choices equal torch's at the given steps: the
    reference token, or an end of turn at the step after the whole reference."""
    for step in steps:
        if step >= len(choices):
            return False
        if step == len(reference):
            if choices[step] not in eos:
                return False
        elif choices[step] != reference[step]:
            return False
    return True


class _VisionFeatures:
    """The artifact's own vision.onnx: image file -> vision_features (1, T, D), as the edge computes them."""

    def __init__(self, artifact_dir: Path) -> None:
        import onnxruntime as ort

        from eiad.manifest import load_manifest

        manifest = load_manifest(artifact_dir)
        self.size = (manifest.input.width, manifest.input.height)
        self.input = manifest.input.name
        self.session = ort.InferenceSession(str(artifact_dir / "vision.onnx"), providers=["CPUExecutionProvider"])

    def __call__(self, image: Path):
        import cv2

        from eiad.errors import DataError

        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"{image}: cannot read this parity image")
        bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_LINEAR)
        return self.session.run(["vision_features"], {self.input: bgr[None]})[0]


def _prompt_pairs(lm, runtime, prompts: list[ParityPrompt], backbone, artifact_dir: Path | None):
    """Per prompt: (torch prompt embeddings, numpy prompt embeddings for the ONNX runtime)."""
    import torch

    vision = _VisionFeatures(artifact_dir) if any(p.image for p in prompts) else None
    pairs = []
    for prompt in prompts:
        if prompt.image is None:
            ids = runtime.encode(prompt.question)
            pairs.append((lm.embed(torch.tensor([ids])).detach(), runtime.embed_ids(ids)))
            continue
        if backbone is None:
            raise ArtifactError(f"{prompt.label}: image prompts need the backbone (its projector and chat template)")
        features = vision(prompt.image)
        before, after = runtime.config["prompt_template"]
        ours = runtime.prompt_embeds(before.format(), features, after.format(prompt=prompt.question))
        pairs.append((backbone.image_prompt_embeds(torch.from_numpy(features), prompt.question), ours))
    return pairs


def run_parity(
    hf_model,
    llm_dir: Path,
    precisions: list[str],
    prompts: list[ParityPrompt | str],
    max_new_tokens: int = 16,
    min_margin: float = 0.0,
    backbone=None,
    artifact_dir: Path | None = None,
) -> dict:
    """Compare every exported precision with PyTorch; raise ArtifactError past MIN_MATCH.

    `artifact_dir` holds the vision.onnx whose features image prompts use (default: the
    folder above `llm_dir`; an export being staged passes the artifact it will join).

    Image prompts use the artifact's vision.onnx features on both sides: the torch side
    projects and splices them with `backbone.image_prompt_embeds` (equal to the HF model's
    own image prompt, tested), the ONNX side with projector.onnx and the runtime template.
    """
    from edge.explainer.runtime import LlmRuntime
    from export.llm.graphs import split_language_model

    prompts = [p if isinstance(p, ParityPrompt) else ParityPrompt(f"text:{i}", p) for i, p in enumerate(prompts)]
    lm = split_language_model(hf_model)
    runtimes = {precision: LlmRuntime(llm_dir, precision) for precision in precisions}
    first = runtimes[precisions[0]]
    pairs = _prompt_pairs(lm, first, prompts, backbone, artifact_dir or llm_dir.parent)
    refs, step_margins = zip(*(torch_greedy_embeds(lm, ref, max_new_tokens, first.eos) for ref, _ in pairs))
    compared = [confident_steps(m, min_margin) for m in step_margins]
    keep = [i for i, steps in enumerate(compared) if steps]
    excluded = [
        {
            "prompt": prompts[i].label,
            "fp32_margin": max(step_margins[i]),
            "reason": f"every step's fp32 top-1 logit margin is < --parity-min-margin {min_margin}",
        }
        for i in range(len(prompts))
        if i not in keep
    ]
    if not keep:
        raise ArtifactError(
            f"no parity prompt has a step with fp32 top-1 margin >= {min_margin}: lower --parity-min-margin"
        )
    reports, answers = [], {}
    for precision, runtime in runtimes.items():
        matches, tokens, seconds, prefill = 0, 0, 0.0, 0.0
        for i in keep:
            generation = runtime.generate(pairs[i][1], max_new_tokens)
            choices = runtime.forced_choices(pairs[i][1], refs[i])
            matches += agrees_with_reference(choices, refs[i], compared[i], runtime.eos)
            tokens, seconds = tokens + len(generation.token_ids), seconds + generation.seconds
            prefill += generation.prefill_s
            answers.setdefault(prompts[i].label, {})[precision] = generation.text
        size = sum(p.stat().st_size for p in llm_dir.glob(f"decoder_{precision}.onnx*"))
        reports.append(
            PrecisionReport(
                precision,
                matches / len(keep),
                len(keep),
                size,
                tokens / seconds if seconds else 0.0,
                1e3 * prefill / len(keep),
            )
        )
        log.info(
            "LLM %s: %.0f%% of %d prompts match torch, %.2f MB, %.0f tokens/s",
            precision,
            100 * reports[-1].match_rate,
            len(keep),
            size / 1e6,
            reports[-1].tokens_per_s,
        )
    result = {
        "prompts": len(prompts),
        "evaluated": len(keep),
        "min_margin": min_margin,
        "max_new_tokens": max_new_tokens,
        "image_prompts": sum(1 for p in prompts if p.image),
        "margins": [min(m) for m in step_margins],  # smallest per prompt
        "step_margins": [list(m) for m in step_margins],
        "compared_steps": [len(steps) for steps in compared],
        "skipped_tie_steps": sum(len(m) - len(steps) for m, steps in zip(step_margins, compared)),
        "prompt_labels": [p.label for p in prompts],
        "excluded": excluded,
        "min_match": MIN_MATCH,
        "precisions": [asdict(r) for r in reports],
        "answers": answers,
    }
    (llm_dir / PARITY_FILE).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    failed = [r for r in reports if r.precision in ("fp32", "int8") and r.match_rate < MIN_MATCH]
    if failed:
        raise ArtifactError(
            "LLM parity failed: "
            + "; ".join(f"{r.precision} matches torch on {r.match_rate:.0%} of {r.evaluated} prompts" for r in failed)
            + f" (needs {MIN_MATCH:.0%}). See {llm_dir / PARITY_FILE}"
        )
    return result
