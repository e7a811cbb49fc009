"""TensorRT INT8 calibration and parity of a built engine against ONNX Runtime.

Tolerances (per output, max abs diff vs ONNX Runtime fp32 on CPU; verdict agreement at
the calibrated image threshold):
    fp16: anomaly map 2e-2, image score 2e-2, class probs 2e-2, verdicts >= 98 %
    int8: anomaly map 8e-2, image score 5e-2, class probs 5e-2, verdicts >= 95 %
Device buffers are torch CUDA tensors (export side has torch; the edge runner uses
cuda-python instead).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from eiad.errors import ArtifactError, DataError

log = logging.getLogger(__name__)

TOLERANCES = {
    "fp16": {"anomaly_map": 2e-2, "image_score": 2e-2, "class_probs": 2e-2, "verdicts": 0.98},
    "int8": {"anomaly_map": 8e-2, "image_score": 5e-2, "class_probs": 5e-2, "verdicts": 0.95},
}


def _images(folder: Path | None, shape: tuple[int, int], limit: int = 64) -> np.ndarray:
    from export.vision.parity import image_paths, load_images

    if folder is None:
        raise DataError("pass --calib-dir with line images: INT8 calibration and TensorRT parity need real images")
    paths, _ = image_paths(None, folder, limit)
    return load_images(paths, *shape)


def int8_calibrator(trt, calib_dir: Path | None, shape: tuple[int, int], cache_path: Path, batch: int = 8):
    """An IInt8EntropyCalibrator2 feeding uint8 NHWC batches of real line images."""
    import torch

    images = _images(calib_dir, shape)

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.buffer = torch.empty((batch, *shape, 3), dtype=torch.uint8, device="cuda")

        def get_batch_size(self):
            return batch

        def get_batch(self, names):
            if self.index + batch > len(images):
                return None
            self.buffer.copy_(torch.from_numpy(images[self.index : self.index + batch]))
            self.index += batch
            return [int(self.buffer.data_ptr())]

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache):
            cache_path.write_bytes(bytes(cache))

    if len(images) < batch:
        raise DataError(f"{calib_dir} has {len(images)} images; INT8 calibration needs at least {batch}")
    return _Calibrator()


def run_engine(engine_path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """Run a serialized engine on uint8 NHWC images (TensorRT 10 tensor-address API)."""
    import tensorrt as trt
    import torch

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise ArtifactError(f"{engine_path} does not load with TensorRT {trt.__version__} on this GPU: rebuild it here")
    context = engine.create_execution_context()
    stream = torch.cuda.Stream()
    inputs = torch.from_numpy(images).cuda()
    outputs = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            context.set_input_shape(name, tuple(inputs.shape))
            context.set_tensor_address(name, inputs.data_ptr())
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            shape = tuple(context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=torch.float32, device="cuda")
            context.set_tensor_address(name, outputs[name].data_ptr())
    if not context.execute_async_v3(stream.cuda_stream):
        raise ArtifactError(f"{engine_path}: execute_async_v3 failed")
    stream.synchronize()
    return {name: tensor.cpu().numpy() for name, tensor in outputs.items()}


def check_trt_parity(engine_path: Path, onnx_path: Path, manifest, precision: str, image_dir: Path | None) -> dict:
    """Compare engine and ONNX Runtime outputs on real images; ArtifactError past TOLERANCES."""
    from export.vision.exporter import cpu_session, run_onnx

    images = _images(image_dir, (manifest.input.height, manifest.input.width), limit=16)
    tol = TOLERANCES[precision]
    trt_out = {k: [] for k in ("anomaly_map", "image_score", "class_probs")}
    for start in range(0, len(images), 4):
        out = run_engine(engine_path, images[start : start + 4])
        for k in trt_out:
            trt_out[k].append(out[k])
    trt_out = {k: np.concatenate(v) for k, v in trt_out.items()}
    ref = run_onnx(cpu_session(onnx_path), images)
    diffs = {k: float(np.abs(trt_out[k] - ref[k]).max()) for k in trt_out}
    threshold = manifest.thresholds.image_score
    agreement = float(np.mean((trt_out["image_score"] >= threshold) == (ref["image_score"] >= threshold)))
    failures = [f"{k} max abs diff {d:.3g} > {tol[k]}" for k, d in diffs.items() if d > tol[k]]
    if agreement < tol["verdicts"]:
        failures.append(f"verdict agreement {agreement:.1%} < {tol['verdicts']:.0%}")
    if failures:
        raise ArtifactError(f"{engine_path.name} ({precision}) differs from ONNX Runtime: " + "; ".join(failures))
    log.info("TensorRT %s parity: %s, verdicts %.0f%%", precision, diffs, 100 * agreement)
    return {"diffs": diffs, "verdict_agreement": agreement}
