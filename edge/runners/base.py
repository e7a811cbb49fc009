"""The contract every inference runner fulfils, and the load-time checks they share.

A runner owns one loaded vision engine of an export artifact. `run` takes a batch of
camera images exactly as the manifest's input spec says (uint8, NHWC, BGR, fixed HxW)
and returns every manifest output by name, batch first. Preprocessing lives inside the
exported graph: runners never resize or normalise.

Thread safety: `run` is called from the pipeline's single inference thread only.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from eiad.errors import ArtifactError
from eiad.manifest import Manifest


class Runner(Protocol):
    manifest: Manifest
    max_batch: int | None  # None: any batch size; else the engine's fixed/maximum batch
    fixed_batch: bool  # True: every run must pass exactly max_batch images (the pipeline pads)
    provider: str  # what actually runs it, e.g. "CPUExecutionProvider", "tensorrt"

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Infer on an (N, H, W, 3) uint8 batch; outputs keyed by manifest output name."""

    def close(self) -> None:
        """Release the session / engine / device buffers; idempotent."""


def vision_file(manifest: Manifest, role: str = "vision_onnx") -> str:
    """The artifact-relative path of the file with `role`; ArtifactError if none."""
    for relative, entry in manifest.files.items():
        if entry.role == role:
            return relative
    roles = sorted({entry.role for entry in manifest.files.values()})
    raise ArtifactError(
        f"the artifact lists no file with role {role!r} (it has {roles}); re-export it with that format"
    )


def check_input_shape(where: str, manifest: Manifest, name: str, shape: list, dtype: str) -> int | None:
    """Compare one engine input against the manifest; return its fixed batch or None.

    `shape` holds ints for fixed axes and strings/None/-1 for dynamic ones.
    """
    spec = manifest.input
    if name != spec.name:
        raise ArtifactError(
            f"{where}: engine input is named {name!r}, the manifest says {spec.name!r}; re-export the artifact"
        )
    if dtype != spec.dtype:
        raise ArtifactError(f"{where}: engine input {name!r} takes {dtype}, the manifest says {spec.dtype}")
    expected = [spec.height, spec.width, spec.channels]
    if len(shape) != 4 or [int(d) if _fixed(d) else d for d in shape[1:]] != expected:
        raise ArtifactError(
            f"{where}: engine input {name!r} has shape {shape}, the manifest says [batch, {spec.height}, {spec.width}, "
            f"{spec.channels}] (NHWC)"
        )
    return int(shape[0]) if _fixed(shape[0]) else None


def check_output_names(where: str, manifest: Manifest, names: list[str]) -> None:
    missing = [o.name for o in manifest.outputs if o.name not in names]
    if missing:
        raise ArtifactError(
            f"{where}: engine lacks outputs {missing} listed in the manifest (it has {names}); re-export the artifact"
        )


def _fixed(dim) -> bool:
    return isinstance(dim, (int, np.integer)) and int(dim) > 0
