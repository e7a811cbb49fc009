"""`eiad export llm`: export, quantize and prove the language model against PyTorch, then
add it to the artifact as `llm/`.

The graphs come from export/llm/graphs.py, the int8/int4 decoders from
export/llm/quantize.py, the gate from export/llm/parity.py. Everything is built in a
staging folder beside the artifact and moved in only after parity passed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from eiad.errors import ArtifactError
from export.llm.parity import DEFAULT_PROMPTS, PARITY_FILE, run_parity

log = logging.getLogger(__name__)


def export_llm_artifact(
    hf_model,
    tokenizer_json: Path,
    artifact_dir: Path,
    precisions: list[str],
    prompts: list | None = None,
    opset: int = 18,
    max_new_tokens: int = 16,
    min_margin: float = 0.0,
    projector=None,
    vision_dim: int | None = None,
    backbone=None,
) -> dict:
    """Add `llm/` (fp32 + quantized decoders, parity report) to an existing artifact's manifest.

    With `backbone` (an EiadBackbone), its projector (`project_vision`, fixed to the artifact's
    vision token count) and its chat template are exported, and image prompts can be checked.
    The new `llm/` is built and checked in a staging folder beside the artifact and moved in
    only after parity passed: a failed export leaves the artifact as it was, its earlier
    `llm/` included.
    """
    import tempfile

    from eiad.manifest import LLM_DIR
    from export.artifact import existing_artifact
    from export.llm.quantize import QUANTIZERS

    unknown = [p for p in precisions if p not in ("fp32", *QUANTIZERS)]
    if unknown:
        raise ArtifactError(f"unknown LLM precision(s) {unknown}: choose from fp32, int8, int4")
    artifact_dir = existing_artifact(artifact_dir)
    with tempfile.TemporaryDirectory(prefix=f".{artifact_dir.name}.llm-staging-", dir=artifact_dir.parent) as tmp:
        llm_dir = Path(tmp) / LLM_DIR
        roles, result = _build_llm(
            hf_model,
            tokenizer_json,
            artifact_dir,
            llm_dir,
            precisions,
            prompts,
            opset,
            max_new_tokens,
            min_margin,
            projector,
            vision_dim,
            backbone,
        )
        _swap_llm_in(artifact_dir, llm_dir, roles)
    return result


def _build_llm(
    hf_model,
    tokenizer_json: Path,
    artifact_dir: Path,
    llm_dir: Path,
    precisions: list[str],
    prompts,
    opset: int,
    max_new_tokens: int,
    min_margin: float,
    projector,
    vision_dim,
    backbone,
) -> tuple[dict, dict]:
    """Export, quantize and check the language model into `llm_dir`; (file roles, parity result)."""
    from eiad.manifest import LLM_CONFIG
    from export.llm.graphs import export_language_model
    from export.llm.quantize import QUANTIZERS

    vision_tokens, template = None, None
    if backbone is not None:
        from eiad.manifest import load_manifest
        from export.llm.graphs import projector_module

        outputs = {o.name: o for o in load_manifest(artifact_dir).outputs}
        if "vision_features" not in outputs:
            raise ArtifactError(
                f"{artifact_dir}/manifest.json has no vision_features output: re-export the vision engine"
            )
        vision_tokens, width = int(outputs["vision_features"].shape[1]), int(outputs["vision_features"].shape[2])
        if width != backbone.vision_hidden_size:
            raise ArtifactError(
                f"{artifact_dir}: vision_features have width {width} but the model's projector takes "
                f"{backbone.vision_hidden_size}: export the LLM of the same backbone family"
            )
        projector, vision_dim, template = projector_module(backbone), width, backbone.prompt_template()
    roles = export_language_model(
        hf_model, tokenizer_json, llm_dir, opset, projector, vision_dim, vision_tokens, template
    )
    fp32 = llm_dir / "decoder_fp32.onnx"
    for precision in [p for p in precisions if p != "fp32"]:
        QUANTIZERS[precision](fp32, llm_dir / f"decoder_{precision}.onnx")
        roles[f"decoder_{precision}.onnx"] = f"llm_decoder_{precision}"
    config = json.loads((llm_dir / LLM_CONFIG).read_text())
    config["precisions"] = ["fp32", *[p for p in precisions if p != "fp32"]]
    (llm_dir / LLM_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    result = run_parity(
        hf_model,
        llm_dir,
        config["precisions"],
        list(prompts or DEFAULT_PROMPTS),
        max_new_tokens,
        min_margin,
        backbone,
        artifact_dir,
    )
    roles[PARITY_FILE] = "llm_parity_report"
    return roles, result


def _swap_llm_in(artifact_dir: Path, staged_llm: Path, roles: dict[str, str]) -> None:
    """Move a checked `llm/` into the artifact (the earlier one aside, then deleted) and re-hash the manifest."""
    import os
    import shutil
    import tempfile

    from eiad.manifest import LLM_DIR, load_manifest
    from export.artifact import add_files, inside

    load_manifest(artifact_dir, verify_files=True)  # a tampered artifact is refused before anything moves
    target = inside(artifact_dir, LLM_DIR)
    aside = Path(tempfile.mkdtemp(prefix=f".{artifact_dir.name}.llm-old-", dir=artifact_dir.parent))
    if target.exists():
        os.replace(target, aside / LLM_DIR)
    os.replace(staged_llm, target)
    shutil.rmtree(aside, ignore_errors=True)
    add_files(
        artifact_dir,
        {f"{LLM_DIR}/{name}": role for name, role in roles.items()},
        drop_prefix=f"{LLM_DIR}/",
        verify=False,
    )
