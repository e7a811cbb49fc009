"""The inference backends `eiad bench engine` can time, behind one small interface.

    backend = open_backend("ort-cpu", artifact_dir)     # or ort-cuda, ort-trt, torch, torch-cuda
    outputs = backend.run(batch_uint8_nhwc)             # {manifest output name: array}
    backend.sync()                                      # wait for the device (no-op on CPU)
    backend.close()

ONNX Runtime backends go through the edge's own `OnnxRuntimeRunner` (the code that runs
on the line), pinned to one provider chain; `device` reports the provider that really
runs the first node, so a CUDA request that fell back to CPU is visible. The torch
backends run the trained checkpoint eagerly (`train.localization.trainer.engine_from_checkpoint`):
the reference the export was checked against. `BackendUnavailable` says why a backend
cannot run here; callers report it instead of hiding it.

Not thread-safe: one backend per timing loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eiad.manifest import Manifest

log = logging.getLogger(__name__)

ORT_CHAINS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
TORCH_DEVICES = {"torch": "cpu", "torch-cuda": "cuda"}
ALL_BACKENDS = (*ORT_CHAINS, *TORCH_DEVICES)


class BackendUnavailable(Exception):
    """This backend cannot run on this machine; the message says why."""


@dataclass
class Backend:
    name: str
    device: str  # what really runs it: an ORT provider name, "torch cpu", "torch cuda:0 (H100)"
    run: Callable[[np.ndarray], dict[str, np.ndarray]]
    max_batch: int | None = None
    sync: Callable[[], None] = field(default=lambda: None)
    close: Callable[[], None] = field(default=lambda: None)


def open_backend(
    name: str, artifact_dir: Path, manifest: Manifest, torch_checkpoint: Path | None = None, intra_op_threads: int = 0
) -> Backend:
    if name in ORT_CHAINS:
        return _ort(name, artifact_dir, manifest, intra_op_threads)
    if name in TORCH_DEVICES:
        return _torch(name, manifest, torch_checkpoint)
    raise BackendUnavailable(f"unknown backend {name!r}; choose from {', '.join(ALL_BACKENDS)}")


def _ort(name: str, artifact_dir: Path, manifest: Manifest, intra_op_threads: int) -> Backend:
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise BackendUnavailable(f"onnxruntime is not installed ({error}); pip install '.[edge]'") from error
    chain = ORT_CHAINS[name]
    if chain[0] not in ort.get_available_providers():
        raise BackendUnavailable(f"this onnxruntime build has no {chain[0]} (it has {ort.get_available_providers()})")
    from edge.runners.onnxruntime_runner import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(artifact_dir, providers=chain, intra_op_threads=intra_op_threads, manifest=manifest)
    if runner.provider != chain[0]:
        runner.close()
        raise BackendUnavailable(
            f"{chain[0]} was requested but ONNX Runtime runs on {runner.provider} (fallback); not timed as {name}"
        )
    return Backend(name=name, device=runner.provider, run=runner.run, max_batch=runner.max_batch, close=runner.close)


def _torch(name: str, manifest: Manifest, checkpoint: Path | None) -> Backend:
    if checkpoint is None:
        raise BackendUnavailable("no --torch-checkpoint given: the artifact holds no torch weights to run eagerly")
    try:
        import torch
    except ImportError as error:
        raise BackendUnavailable(f"torch is not installed here ({error})") from error
    device = TORCH_DEVICES[name]
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("torch has no CUDA device on this machine")
    from eiad.modeling.checkpoint import engine_from_checkpoint

    engine, _ = engine_from_checkpoint(Path(checkpoint), device=device)
    if (engine.height, engine.width) != (manifest.input.height, manifest.input.width):
        raise BackendUnavailable(
            f"checkpoint {checkpoint} takes {engine.width}x{engine.height} px, the artifact "
            f"{manifest.input.width}x{manifest.input.height}: not the same model"
        )
    names = [o.name for o in manifest.outputs]

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = engine(torch.from_numpy(batch).to(device))
        return {n: getattr(out, n).detach().float().cpu().numpy() for n in names if hasattr(out, n)}

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    label = f"torch {device}" + (f" ({torch.cuda.get_device_name(0)})" if device == "cuda" else "")
    return Backend(name=name, device=label, run=run, sync=sync)
