"""`eiad export verify`: hashes, then load every part of an artifact. Errors name the file."""

from __future__ import annotations

import logging
from pathlib import Path

from eiad.errors import ArtifactError
from eiad.manifest import llm_dir, load_manifest

log = logging.getLogger(__name__)


def verify_artifact(directory: Path) -> list[str]:
    """Check sizes and sha256 of every listed file, then load each ONNX graph and the LLM.

    Returns one human-readable line per checked part; raises ArtifactError on the first fault.
    TensorRT engines are checked by hash only (they load only on the GPU that built them).
    """
    import onnxruntime as ort

    directory = Path(directory)
    manifest = load_manifest(directory, verify_files=True)
    lines = [f"{len(manifest.files)} files match their sha256 ({manifest.model_id}, schema {manifest.schema_version})"]
    for relative, entry in manifest.files.items():
        if not relative.endswith(".onnx"):
            continue
        path = directory / relative
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - ORT's own exception types
            raise ArtifactError(f"{path} passes its hash but ONNX Runtime cannot load it: {error}") from error
        if entry.role == "vision_onnx":
            names = [o.name for o in session.get_outputs()]
            expected = [o.name for o in manifest.outputs]
            if names != expected:
                raise ArtifactError(f"{path} outputs {names} differ from the manifest's {expected}")
        lines.append(f"loaded {relative} ({entry.role})")
    llm_decoders = sorted(
        e.role.rsplit("_", 1)[-1]
        for e in manifest.files.values()
        if e.role.startswith("llm_decoder_") and not e.role.endswith("_data")
    )
    if llm_decoders:
        from edge.explainer.runtime import LlmRuntime

        for precision in llm_decoders:
            runtime = LlmRuntime(llm_dir(directory), precision)
            runtime.generate_ids(runtime.encode("ok"), max_new_tokens=1)
            lines.append(f"LLM {precision}: one token generated")
    return lines
