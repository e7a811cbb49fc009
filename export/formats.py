"""The table of export formats: one row per `eiad export` target.

Each row says what the format needs importable, which precisions it supports and which
function does the work. An unsupported precision raises; precision is never lowered
silently; nothing is installed at run time.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from eiad.errors import ArtifactError, ConfigError
from eiad.manifest import Thresholds


@dataclass(frozen=True)
class ExportFormat:
    name: str
    description: str
    requires: tuple[str, ...]  # importable modules
    precisions: tuple[str, ...]
    install_hint: str

    def check(self, precision: str | None = None) -> None:
        """Raise if a required module is missing or `precision` is not supported."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            raise ArtifactError(
                f"'eiad export {self.name}' needs {', '.join(missing)}, not installed here: {self.install_hint}"
            )
        if precision is not None and precision not in self.precisions:
            raise ConfigError(
                f"'eiad export {self.name}' supports precision {'/'.join(self.precisions)}, not {precision!r}"
            )


FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat(
        "onnx",
        "vision engine -> vision.onnx (fp32, dynamic batch) + parity + manifest",
        ("torch", "onnx", "onnxscript", "onnxruntime"),
        ("fp32",),
        "pip install '.[export]'",
    ),
    "llm": ExportFormat(
        "llm",
        "language model -> llm/decoder_{fp32,int8,int4}.onnx + projector + tokenizer",
        ("torch", "transformers", "onnx", "onnxruntime", "tokenizers"),
        ("fp32", "int8", "int4"),
        "pip install '.[export]'",
    ),
    "quantize": ExportFormat(
        "quantize",
        "fp32 artifact -> int8 (Q/DQ) or fp16 artifact + parity with the fp32 source",
        ("onnx", "onnxruntime"),
        ("int8", "fp16"),
        "pip install '.[export]'",
    ),
    "tensorrt": ExportFormat(
        "tensorrt",
        "vision.onnx -> TensorRT engine keyed by ONNX hash, TensorRT version, GPU, precision, profile",
        ("tensorrt",),
        ("fp16", "int8"),
        "TensorRT exists on the edge box (JetPack) or via NVIDIA's wheels on a CUDA machine; run this command there",
    ),
}


@dataclass(frozen=True)
class VisionMeta:
    """What the manifest says about the vision engine, taken from the checkpoint."""

    model_id: str
    backbone: str
    preset: str
    class_names: list[str]
    thresholds: Thresholds
    preprocessing: str
    height: int
    width: int
