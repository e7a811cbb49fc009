"""Station config -> runner. Implementations are imported when used (TensorRT and torch are optional)."""

from __future__ import annotations

from pathlib import Path

from edge.runners.base import Runner
from eiad.manifest import Manifest


def build_runner(config, artifact_dir: Path, manifest: Manifest, resolve=lambda p: p) -> Runner:
    """`config` is one of the runner configs of edge/config.py (onnxruntime, tensorrt, torch)."""
    if config.kind == "onnxruntime":
        from edge.runners.onnxruntime_runner import OnnxRuntimeRunner

        cache = resolve(config.engine_cache_dir) if config.engine_cache_dir else None
        return OnnxRuntimeRunner(artifact_dir, config.providers, cache, config.intra_op_threads, manifest=manifest)
    if config.kind == "tensorrt":
        from edge.runners.tensorrt_runner import TensorRtRunner

        engine = resolve(config.engine) if config.engine else None
        return TensorRtRunner(artifact_dir, engine, manifest=manifest)
    if config.kind == "torch":
        from edge.runners.torch_runner import TorchRunner

        return TorchRunner(
            artifact_dir,
            resolve(config.checkpoint),
            config.device,
            config.cuda_graphs,
            config.threads,
            manifest=manifest,
        )
    raise ValueError(f"unknown runner kind {config.kind!r}")
