"""Native TensorRT 10 runner (name-based I/O API) with cuda-python device buffers.

Needs `tensorrt` (10.x) and `cuda-python`; neither exists on the development machines
(nor on CI), so everything is imported inside the constructor and the tests skip with a
reason there. No torch: device memory comes from cuda-python's runtime API (cudart).

The engine must have been built for this TensorRT version and this GPU (the export
stage keys its cache on both); a mismatch fails at deserialisation with TensorRT's own
message, which is passed on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge.runners.base import check_input_shape, check_output_names
from eiad.errors import ArtifactError
from eiad.manifest import Manifest, load_manifest

log = logging.getLogger(__name__)


def _imports():
    try:
        import tensorrt as trt
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6 layout
    except ImportError:
        try:
            import tensorrt as trt
            from cuda import cudart
        except ImportError as error:
            raise ArtifactError(
                "the tensorrt runner needs TensorRT 10 and cuda-python (pip install cuda-python; TensorRT comes with "
                "JetPack or NVIDIA's wheels); use runner.kind: onnxruntime on machines without them"
            ) from error
    return trt, cudart


def _check(cudart, result):
    """cuda-python returns (err, *values): raise with the error's name, return the values."""
    err, *values = result
    if int(err) != 0:
        name = cudart.cudaGetErrorName(err)[1]
        raise ArtifactError(f"CUDA call failed: {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else values


def engine_file(manifest: Manifest) -> str:
    """The artifact's one TensorRT engine: `eiad export tensorrt` lists it with role
    `tensorrt_engine_<precision>` (older artifacts: `tensorrt_engine`). Several engines
    (fp16 and int8, or two GPUs) need `runner.engine` to say which; none needs a build."""
    engines = sorted(rel for rel, entry in manifest.files.items() if entry.role.startswith("tensorrt_engine"))
    if len(engines) == 1:
        return engines[0]
    if not engines:
        raise ArtifactError(
            "the artifact has no TensorRT engine: build one on this box with "
            "'eiad export tensorrt ARTIFACT' (engines only run on the GPU and TensorRT version that built them)"
        )
    raise ArtifactError(
        f"the artifact has {len(engines)} TensorRT engines ({', '.join(engines)}): "
        "set runner.engine in station.yaml to the one built for this box"
    )


class TensorRtRunner:
    """Deserialises the artifact's `tensorrt_engine`, checks its I/O against the manifest,
    owns one stream and one device buffer per tensor (sized for the engine's max batch)."""

    def __init__(self, artifact_dir: Path, engine_path: Path | None = None, manifest: Manifest | None = None) -> None:
        trt, cudart = _imports()
        self._trt, self._cudart = trt, cudart
        artifact_dir = Path(artifact_dir)
        self.manifest = manifest or load_manifest(artifact_dir)
        path = Path(engine_path) if engine_path else artifact_dir / engine_file(self.manifest)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise ArtifactError(
                f"TensorRT cannot load {path}: built for another TensorRT version or GPU? Rebuild it with 'eiad export "
                "tensorrt'"
            )
        self._context = self._engine.create_execution_context()
        self._stream = _check(cudart, cudart.cudaStreamCreate())
        self._buffers: dict[str, int] = {}
        self.provider = "tensorrt"
        self.max_batch = self._validate(str(path))
        self._allocate()
        # One warm-up: the first execution loads kernels and sets up tactics lazily.
        spec = self.manifest.input
        self.run(
            np.zeros((self.max_batch if self.fixed_batch else 1, spec.height, spec.width, spec.channels), np.uint8)
        )

    def _validate(self, where: str) -> int | None:
        trt, engine = self._trt, self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise ArtifactError(f"{where}: the engine must take one input, it takes {inputs}")
        name = inputs[0]
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
        check_input_shape(where, self.manifest, name, list(engine.get_tensor_shape(name)), dtype)
        check_output_names(where, self.manifest, [n for n in names if n != name])
        self._input, self._outputs = name, [o.name for o in self.manifest.outputs]
        self.fixed_batch = engine.get_tensor_shape(name)[0] != -1
        profile_max = engine.get_tensor_shape(name) if self.fixed_batch else engine.get_tensor_profile_shape(name, 0)[2]
        return int(profile_max[0])

    def _allocate(self) -> None:
        trt, cudart = self._trt, self._cudart
        spec = self.manifest.input
        self._context.set_input_shape(self._input, (self.max_batch, spec.height, spec.width, spec.channels))
        for name in [self._input, *self._outputs]:
            shape = tuple(self._context.get_tensor_shape(name))
            size = int(np.prod(shape)) * np.dtype(trt.nptype(self._engine.get_tensor_dtype(name))).itemsize
            self._buffers[name] = _check(cudart, cudart.cudaMalloc(size))
            self._context.set_tensor_address(name, self._buffers[name])

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        trt, cudart = self._trt, self._cudart
        batch = np.ascontiguousarray(batch)
        copy_in, copy_out = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._context.set_input_shape(self._input, batch.shape)
        _check(
            cudart,
            cudart.cudaMemcpyAsync(self._buffers[self._input], batch.ctypes.data, batch.nbytes, copy_in, self._stream),
        )
        if not self._context.execute_async_v3(self._stream):
            raise ArtifactError("TensorRT execute_async_v3 failed; see the TensorRT log above")
        results = {}
        for name in self._outputs:
            shape = tuple(self._context.get_tensor_shape(name))
            host = np.empty(shape, trt.nptype(self._engine.get_tensor_dtype(name)))
            _check(
                cudart,
                cudart.cudaMemcpyAsync(host.ctypes.data, self._buffers[name], host.nbytes, copy_out, self._stream),
            )
            results[name] = host
        _check(cudart, cudart.cudaStreamSynchronize(self._stream))
        return {k: v.astype(np.float32, copy=False) for k, v in results.items()}

    def close(self) -> None:
        cudart = self._cudart
        for pointer in self._buffers.values():
            cudart.cudaFree(pointer)
        self._buffers = {}
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self._context = self._engine = None
