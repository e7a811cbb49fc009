"""Graph-level steps of `eiad export quantize` (export/vision/quantize.py runs them on artifacts):
static QDQ int8 with ONNX Runtime's quantizer, fp16 conversion, and the checks on the
result (same inputs/outputs, symmetric Q/DQ for TensorRT).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from eiad.errors import ArtifactError

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


def _weight_names(model) -> set[str]:
    names = {t.name for t in model.graph.initializer}
    return names | {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}


def onnx_model(path: Path):
    import onnx

    return onnx.load(str(path), load_external_data=False)


def activation_matmuls(model) -> list[str]:
    """MatMul/Gemm nodes with no constant input (attention's q.k and p.v): kept in float."""
    weights = _weight_names(model)
    return [
        n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and not any(i in weights for i in n.input)
    ]


def asymmetric_quantization(onnx_path: Path) -> bool:
    """True if any QuantizeLinear has a uint8 or non-zero zero point (TensorRT takes neither)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and len(node.input) > 2 and node.input[2] in inits:
            zero = inits[node.input[2]]
            if zero.data_type == onnx.TensorProto.UINT8 or np.any(numpy_helper.to_array(zero) != 0):
                return True
    return False


class _Reader:
    """CalibrationDataReader over uint8 NHWC images, one per call, with a progress bar."""

    def __init__(self, images: np.ndarray, input_name: str) -> None:
        from tqdm import tqdm

        self._images, self._name, self._index = images, input_name, 0
        self._bar = tqdm(total=len(images), desc="calibrating int8 ranges", unit="image", leave=False)

    def get_next(self):
        if self._index >= len(self._images):
            return None
        batch = self._images[self._index : self._index + 1]
        self._index += 1
        self._bar.update(1)
        return {self._name: batch}

    def rewind(self) -> None:
        self._index = 0

    def close(self) -> None:
        self._bar.close()


class _QuietAdvice(logging.Filter):
    # quantize_static advises shape pre-processing on the root logger on every call.
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


def quantize_int8(
    src_onnx: Path,
    dst_onnx: Path,
    calibration: np.ndarray,
    input_name: str,
    symmetric: bool,
    keep_float: tuple[str, ...] = (),
    only: list[str] | None = None,
    cache: Path | None = None,
    method: str = "minmax",
) -> list[str]:
    """Static QDQ int8 of `src_onnx` into `dst_onnx`; returns the nodes kept in float.

    `keep_float` adds nodes to the float ones, `only` quantizes just those nodes, `cache`
    (a json path) stores the calibrated ranges on first use and reuses them after, so a
    search re-quantizes in about a second; `method` is "minmax" or "percentile" (99.99).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    excluded = [*activation_matmuls(onnx.load(str(src_onnx), load_external_data=False)), *keep_float]
    reader = type("Reader", (_Reader, CalibrationDataReader), {})(calibration, input_name)
    activation = QuantType.QInt8 if symmetric else QuantType.QUInt8
    extra = {"ActivationSymmetric": True} if symmetric else {}
    if method == "percentile":
        extra["CalibPercentile"] = 99.99
    quiet = _QuietAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_static(
            str(src_onnx),
            str(dst_onnx),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=activation,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_quantize=only,
            nodes_to_exclude=excluded,
            extra_options=extra,
            calibrate_method=CalibrationMethod.Percentile if method == "percentile" else CalibrationMethod.MinMax,
            calibration_cache_path=str(cache) if cache else None,
        )
    except Exception as error:  # noqa: BLE001 - the quantizer raises many types; name the step
        raise ArtifactError(f"int8 quantization of {src_onnx} failed: {type(error).__name__}: {error}") from error
    finally:
        logging.getLogger().removeFilter(quiet)
        reader.close()
    return excluded


def convert_fp16(src_onnx: Path, dst_onnx: Path) -> None:
    """fp16 weights and compute; the uint8 input and float32 outputs are kept."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        converted = convert_float_to_float16(onnx.load(str(src_onnx)), keep_io_types=True)
    except Exception as error:  # noqa: BLE001
        raise ArtifactError(f"fp16 conversion of {src_onnx} failed: {type(error).__name__}: {error}") from error
    onnx.save(converted, str(dst_onnx))


def check_same_io(src_onnx: Path, dst_onnx: Path) -> None:
    """onnx.checker + shape inference on the new graph; its inputs/outputs must equal the source's."""
    import onnx

    try:
        onnx.checker.check_model(str(dst_onnx))
        inferred = onnx.shape_inference.infer_shapes(onnx.load(str(dst_onnx)), strict_mode=True)
    except Exception as error:  # noqa: BLE001 - checker and inference raise different types
        raise ArtifactError(f"the quantized graph {dst_onnx.name} fails the ONNX checks: {error}") from error

    def io(model):
        return [(v.name, v.type.tensor_type.elem_type) for v in (*model.graph.input, *model.graph.output)]

    source = io(onnx.load(str(src_onnx), load_external_data=False))
    if io(inferred) != source:
        raise ArtifactError(f"the quantized graph's inputs/outputs {io(inferred)} differ from the source's {source}")
