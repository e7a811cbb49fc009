"""Weight quantization of the exported decoder with onnxruntime.quantization.

int8: `quantize_dynamic` (weights int8 per tensor, activations quantized at run time;
MatMul only, constant weights only). int4: `MatMulNBitsQuantizer` (blockwise 4-bit
weights, the MatMulNBits contrib op that ONNX Runtime's CPU and CUDA providers run).
The embedding table stays float (numpy lookup on the edge); lm_head is a MatMul and is
quantized with the rest.
"""

from __future__ import annotations

import logging
from pathlib import Path

from eiad.errors import ArtifactError

log = logging.getLogger(__name__)

INT4_BLOCK = 32  # weights are quantized in blocks of 32 along K; K must be a multiple


def quantize_int8(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            extra_options={"MatMulConstBOnly": True},
        )
    except Exception as error:  # noqa: BLE001
        raise ArtifactError(f"int8 quantization of {src} failed: {error}") from error
    _require_ops(dst, ("MatMulInteger", "DynamicQuantizeMatMul"), "int8")
    return dst


def quantize_int4(src: Path, dst: Path, block_size: int = INT4_BLOCK) -> Path:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    qlog = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    previous = qlog.level
    qlog.setLevel(logging.WARNING)  # it logs one INFO line per node
    try:
        model = onnx.load(str(src))
        config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, accuracy_level=4)
        quantizer = MatMulNBitsQuantizer(model, algo_config=config)
        quantizer.process()
        quantizer.model.save_model_to_file(str(dst), False)
    except Exception as error:  # noqa: BLE001
        raise ArtifactError(f"int4 quantization of {src} failed: {error}") from error
    finally:
        qlog.setLevel(previous)
    _require_ops(dst, ("MatMulNBits",), "int4")
    return dst


def _require_ops(path: Path, ops: tuple[str, ...], label: str) -> None:
    """A quantizer that silently quantized nothing would ship an fp32 model labelled int8/int4."""
    import onnx

    found = sum(1 for node in onnx.load(str(path), load_external_data=False).graph.node if node.op_type in ops)
    if found == 0:
        raise ArtifactError(f"{path}: {label} quantization quantized no MatMul (no {'/'.join(ops)} nodes)")
    log.info("%s: %d quantized MatMuls (%s)", path.name, found, label)


QUANTIZERS = {"int8": quantize_int8, "int4": quantize_int4}
