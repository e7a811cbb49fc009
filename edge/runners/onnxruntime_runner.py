"""ONNX Runtime runner with the provider chain TensorRT EP -> CUDA EP -> CPU.

"auto" takes every provider of that chain that this onnxruntime build offers, in that
order; ONNX Runtime then places each node on the first provider that can run it. The
TensorRT EP keeps its built engines and timing cache on disk (`engine_cache_dir`), keyed
by ONNX Runtime on the model and GPU, so the minutes-long first build happens once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from edge.runners.base import check_input_shape, check_output_names, vision_file
from eiad.errors import ArtifactError
from eiad.manifest import Manifest, load_manifest

log = logging.getLogger(__name__)

PROVIDER_CHAIN = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_ORT_TYPES = {"tensor(uint8)": "uint8", "tensor(float)": "float32", "tensor(float16)": "float16"}


def provider_list(providers: str | list[str], available: list[str], engine_cache_dir: Path, fp16: bool) -> list:
    """Resolve "auto" or an explicit list to ORT's (name, options) form; raises on unknown names."""
    names = [p for p in PROVIDER_CHAIN if p in available] if providers == "auto" else list(providers)
    unknown = [p for p in names if p not in available]
    if unknown:
        raise ArtifactError(
            f"runner.providers {unknown} are not offered by this onnxruntime build (it has {available}); use 'auto' or "
            "install onnxruntime-gpu"
        )
    resolved: list = []
    for name in names:
        if name == "TensorrtExecutionProvider":
            engine_cache_dir.mkdir(parents=True, exist_ok=True)
            resolved.append(
                (
                    name,
                    {
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(engine_cache_dir),
                        "trt_timing_cache_enable": True,
                        "trt_timing_cache_path": str(engine_cache_dir),
                        "trt_fp16_enable": fp16,
                    },
                )
            )
        else:
            resolved.append(name)
    return resolved


class OnnxRuntimeRunner:
    """Loads the artifact's `vision_onnx` file, checks it against the manifest, warms it up."""

    def __init__(
        self,
        artifact_dir: Path,
        providers: str | list[str] = "auto",
        engine_cache_dir: Path | None = None,
        intra_op_threads: int = 0,
        manifest: Manifest | None = None,
    ) -> None:
        import onnxruntime as ort

        artifact_dir = Path(artifact_dir)
        self.manifest = manifest or load_manifest(artifact_dir)
        model_path = artifact_dir / vision_file(self.manifest)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        cache = engine_cache_dir or artifact_dir / "trt_cache"
        chain = provider_list(providers, ort.get_available_providers(), Path(cache), self.manifest.precision == "fp16")
        started = time.perf_counter()
        try:
            self._session = ort.InferenceSession(str(model_path), sess_options=options, providers=chain)
        except Exception as error:  # ORT raises its own types for corrupt graphs
            raise ArtifactError(f"ONNX Runtime cannot load {model_path}: {error}") from error
        self.provider = self._session.get_providers()[0]
        self.max_batch = self._validate(str(model_path))
        self.fixed_batch = self.max_batch is not None  # ONNX has no "up to N": a number is exact
        self._output_names = [o.name for o in self.manifest.outputs]
        # One warm-up run: the first run allocates memory arenas and (with the TensorRT EP)
        # builds or loads the engine; doing it here keeps that time out of the first part.
        spec = self.manifest.input
        self.run(np.zeros((self.max_batch or 1, spec.height, spec.width, spec.channels), np.uint8))
        log.info(
            "loaded %s on %s in %.2f s (max batch %s)",
            model_path,
            self._session.get_providers(),
            time.perf_counter() - started,
            self.max_batch or "any",
        )

    def _validate(self, where: str) -> int | None:
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ArtifactError(f"{where}: the vision engine must take one input, it takes {[i.name for i in inputs]}")
        onnx_input = inputs[0]
        dtype = _ORT_TYPES.get(onnx_input.type, onnx_input.type)
        max_batch = check_input_shape(where, self.manifest, onnx_input.name, list(onnx_input.shape), dtype)
        check_output_names(where, self.manifest, [o.name for o in self._session.get_outputs()])
        return max_batch

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self._session.run(self._output_names, {self.manifest.input.name: batch})
        return dict(zip(self._output_names, values))

    def close(self) -> None:
        self._session = None
