"""The export artifact's manifest: the one contract between `export/` and `edge/`.

An artifact is a directory holding `manifest.json` and the files it lists. Everything
the edge needs to turn camera pixels into a verdict is here: the input the vision
engine expects, the names and shapes of its outputs, the calibrated thresholds and the
class names. Preprocessing (BGR->RGB, resize rule, mean/std) happens inside the
exported graph; the manifest states it so a person can check it, the edge never redoes it.

Thread safety: the models are immutable value objects (frozen).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eiad.errors import ArtifactError

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1

# Output tensor names of the vision engine; the field names of the model's NamedTuple.
ANOMALY_MAP = "anomaly_map"  # (N, 1, H, W) float32, defect probability per pixel, 0..1
IMAGE_SCORE = "image_score"  # (N,) float32, defect probability of the image, 0..1
CLASS_PROBS = "class_probs"  # (N, C) float32, softmax over class_names
VISION_FEATURES = "vision_features"  # (N, T, D) float32, tokens the explainer consumes


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Frozen):
    """What the vision engine's single input takes: camera pixels, as OpenCV delivers them."""

    name: str = "image"
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: Literal[3] = 3
    channel_order: Literal["BGR", "RGB"] = "BGR"
    layout: Literal["NHWC"] = "NHWC"
    dtype: Literal["uint8"] = "uint8"


class TensorSpec(_Frozen):
    name: str
    shape: list[int | str]  # a string names a dynamic axis, e.g. "batch"
    dtype: str


class Thresholds(_Frozen):
    """Calibrated on the calibration split; the edge may override them per station.

    `class_confidence`: the defect class is published only when the model's confidence in
    it is at least this; below, the edge says `defect_class: "unknown"` (0 = always published).
    """

    image_score: float = Field(ge=0.0, le=1.0)
    pixel: float = Field(ge=0.0, le=1.0)
    min_defect_area_px: int = Field(default=0, ge=0)
    class_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    calibration: str = ""  # how they were chosen, e.g. "at most 1% of 60 good parts rejected; ..."


class FileEntry(_Frozen):
    role: str  # "vision_onnx", "vision_onnx_data", "tensorrt_engine", "llm", ...
    sha256: str
    size_bytes: int = Field(ge=0)


class Manifest(_Frozen):
    schema_version: int = SCHEMA_VERSION
    model_id: str
    backbone: str
    preset: str
    input: InputSpec
    outputs: list[TensorSpec]
    class_names: list[str]
    thresholds: Thresholds
    preprocessing: str
    precision: str = "fp32"
    versions: dict[str, str] = Field(default_factory=dict)
    files: dict[str, FileEntry] = Field(default_factory=dict)
    created_at: str = ""

    @model_validator(mode="after")
    def _check(self) -> Manifest:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(
                f"manifest schema version {self.schema_version} is not supported "
                f"(this software reads version {SCHEMA_VERSION}); re-export the model"
            )
        names = {o.name for o in self.outputs}
        missing = {ANOMALY_MAP, IMAGE_SCORE, CLASS_PROBS} - names
        if missing:
            raise ValueError(f"outputs lack {sorted(missing)}")
        return self

    def output(self, name: str) -> TensorSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise ArtifactError(f"the artifact has no output named {name!r}")


# The language-model part of an artifact (optional: `eiad export llm` adds it). Its files
# sit in LLM_DIR and are listed in the manifest like every other file; LLM_CONFIG says
# which precisions, states and prompt template the exported decoders have.
LLM_DIR = "llm"
LLM_CONFIG = "llm_config.json"
LLM_DECODER = "decoder_{precision}.onnx"
LLM_EMBEDDINGS = "embed_tokens.npy"
LLM_TOKENIZER = "tokenizer.json"
LLM_PROJECTOR = "projector.onnx"


def llm_dir(artifact: Path) -> Path:
    """The folder of an artifact's language model (it may not exist)."""
    return Path(artifact) / LLM_DIR


def has_llm(artifact: Path) -> bool:
    return (llm_dir(artifact) / LLM_CONFIG).is_file()


def read_llm_config(artifact: Path) -> dict:
    """The artifact's llm_config.json; ArtifactError saying what to run when there is none."""
    path = llm_dir(artifact) / LLM_CONFIG
    if not path.is_file():
        raise ArtifactError(f"{Path(artifact)} has no language model ({path} missing): add it with 'eiad export llm'")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{path} is unreadable ({error}): re-run 'eiad export llm'") from error


def sha256_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path: Path, role: str) -> FileEntry:
    return FileEntry(role=role, sha256=sha256_of(path), size_bytes=path.stat().st_size)


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    path = Path(directory) / MANIFEST_NAME
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def load_manifest(directory: Path, verify_files: bool = True) -> Manifest:
    """Read and validate `manifest.json`; with `verify_files`, check every file's size and sha256.

    Raises ArtifactError naming the file that is missing, truncated or altered.
    """
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"{path} not found: is {directory} an export artifact? Run 'eiad export onnx' to make one")
    try:
        manifest = Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path} is not a valid manifest: {error}") from error
    if verify_files:
        verify_artifact_files(directory, manifest)
    return manifest


def verify_artifact_files(directory: Path, manifest: Manifest) -> None:
    for relative, entry in manifest.files.items():
        file_path = directory / relative
        if not file_path.is_file():
            raise ArtifactError(f"artifact file {file_path} is missing (listed in {MANIFEST_NAME} as {entry.role})")
        size = file_path.stat().st_size
        if size != entry.size_bytes:
            raise ArtifactError(
                f"artifact file {file_path} has {size} bytes, the manifest says {entry.size_bytes}: "
                "truncated or replaced; copy the artifact again"
            )
        if sha256_of(file_path) != entry.sha256:
            raise ArtifactError(
                f"artifact file {file_path} does not match its sha256 in {MANIFEST_NAME}: "
                "altered or corrupt; copy the artifact again"
            )
