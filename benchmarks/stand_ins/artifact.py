"""A tiny, real export artifact built with onnx.helper (no torch), for edge tests.

The graph follows the artifact contract in `eiad/manifest.py`:

    image uint8 [batch, H, W, 3] (BGR)
      -> x = float(image) / 255
      -> grey = mean over channels
      -> anomaly_map [batch, 1, H, W] = clip(|grey - 0.5| * 2, 0, 1)
      -> image_score [batch]          = max of anomaly_map
      -> class_probs [batch, 2]       = softmax(k * [mean(x) - 0.5, 0.5 - mean(x)])
                                        (class "bright_spot" when the image is brighter
                                         than mid grey, else "dark_spot")
      -> vision_features [batch, 16, 3] = 4x4 average pool of x, as 16 tokens of 3 values

So a mid-grey (128) frame scores ~0 (OK) and a white or black patch scores ~1 inside the
patch (NG, with a region exactly where the patch is). `poison="nan"` adds NaN to the map
to test that broken outputs are REJECTED, never OK.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from eiad.manifest import InputSpec, Manifest, TensorSpec, Thresholds, file_entry, write_manifest

CLASS_NAMES = ["bright_spot", "dark_spot"]
GREY = 128  # the pixel value the tiny model calls perfect


def _const(name: str, value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name))


def build_graph(height: int, width: int, poison: str | None = None, batch: int | str = "batch") -> onnx.ModelProto:
    """The ONNX model described in the module docstring (opset 17, dynamic batch by default)."""
    pool_h, pool_w = height // 4, width // 4
    nodes = [
        _const("k255", np.float32(255.0)),
        _const("half", np.float32(0.5)),
        _const("two", np.float32(2.0)),
        _const("zero", np.float32(0.0)),
        _const("one", np.float32(1.0)),
        _const("class_w", np.array([[20.0, -20.0]] * 3, np.float32) / 3.0),
        _const("class_b", np.array([-10.0, 10.0], np.float32)),
        _const("tok_shape", np.array([0, 3, 16], np.int64)),
        helper.make_node("Cast", ["image"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["xf", "k255"], ["x"]),
        helper.make_node("ReduceMean", ["x"], ["grey"], axes=[3], keepdims=1),  # N,H,W,1
        helper.make_node("Transpose", ["grey"], ["grey_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["grey_nchw", "half"], ["dev"]),
        helper.make_node("Abs", ["dev"], ["absdev"]),
        helper.make_node("Mul", ["absdev", "two"], ["raw_map"]),
        helper.make_node("Clip", ["raw_map", "zero", "one"], ["clean_map"]),
    ]
    if poison == "nan":
        nodes += [_const("nan", np.float32(np.nan)), helper.make_node("Add", ["clean_map", "nan"], ["anomaly_map"])]
    else:
        nodes += [helper.make_node("Identity", ["clean_map"], ["anomaly_map"])]
    nodes += [
        helper.make_node("ReduceMax", ["anomaly_map"], ["image_score"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("ReduceMean", ["x"], ["chan_mean"], axes=[1, 2], keepdims=0),  # N,3
        helper.make_node("MatMul", ["chan_mean", "class_w"], ["logits0"]),
        helper.make_node("Add", ["logits0", "class_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["class_probs"], axis=1),
        helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node(
            "AveragePool", ["x_nchw"], ["pooled"], kernel_shape=[pool_h, pool_w], strides=[pool_h, pool_w]
        ),
        helper.make_node("Reshape", ["pooled", "tok_shape"], ["tokens_ct"]),
        helper.make_node("Transpose", ["tokens_ct"], ["vision_features"], perm=[0, 2, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_eiad",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [batch, height, width, 3])],
        [
            helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, [batch, 1, height, width]),
            helper.make_tensor_value_info("image_score", TensorProto.FLOAT, [batch]),
            helper.make_tensor_value_info("class_probs", TensorProto.FLOAT, [batch, 2]),
            helper.make_tensor_value_info("vision_features", TensorProto.FLOAT, [batch, 16, 3]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="eiad-tests")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def build_tiny_artifact(
    directory: Path,
    height: int = 64,
    width: int = 64,
    image_threshold: float = 0.5,
    pixel_threshold: float = 0.5,
    min_defect_area_px: int = 4,
    poison: str | None = None,
    model_id: str = "tiny-eiad-test",
) -> Path:
    """Write `vision.onnx` + `manifest.json` (with sha256s) into `directory`; return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    onnx_path = directory / "vision.onnx"
    onnx.save(build_graph(height, width, poison), str(onnx_path))
    manifest = Manifest(
        model_id=model_id,
        backbone="tiny-brightness",
        preset="test",
        input=InputSpec(height=height, width=width),
        outputs=[
            TensorSpec(name="anomaly_map", shape=["batch", 1, height, width], dtype="float32"),
            TensorSpec(name="image_score", shape=["batch"], dtype="float32"),
            TensorSpec(name="class_probs", shape=["batch", len(CLASS_NAMES)], dtype="float32"),
            TensorSpec(name="vision_features", shape=["batch", 16, 3], dtype="float32"),
        ],
        class_names=CLASS_NAMES,
        thresholds=Thresholds(
            image_score=image_threshold,
            pixel=pixel_threshold,
            min_defect_area_px=min_defect_area_px,
            calibration="hand-set for the tiny test graph",
        ),
        preprocessing="inside the graph: uint8 BGR NHWC, /255, no resize",
        files={"vision.onnx": file_entry(onnx_path, "vision_onnx")},
    )
    write_manifest(directory, manifest)
    return directory


TEXTURE_LEVELS = 4  # grey levels either side of GREY


def grey_frame(height: int = 64, width: int = 64) -> np.ndarray:
    """A defect-free frame for the tiny model: mid grey with a faint, fixed texture.

    The texture (a seeded pattern of -4..+4 grey levels, the same in all three channels,
    std ~2.6) is what a lit part under a real camera shows, so the station's blank-frame
    check (`frames.blank_max_std` 2.0 by default) passes it, while the tiny model still
    scores it ~0.03 (far below its 0.5 threshold). Same frame for the same size, every call.
    """
    rng = np.random.default_rng(height * 100_003 + width)
    # Zero-sum (each value paired with its negative, then shuffled): the mean stays exactly
    # GREY, so the tiny model's brightness-based class of a small patch is unchanged.
    half = rng.integers(-TEXTURE_LEVELS, TEXTURE_LEVELS + 1, (height * width) // 2, dtype=np.int16)
    texture = np.concatenate([half, -half, np.zeros((height * width) % 2, np.int16)])
    rng.shuffle(texture)
    return np.repeat((GREY + texture.reshape(height, width, 1)).astype(np.uint8), 3, axis=2)


def frame_with_patch(
    box_xyxy: tuple[int, int, int, int], value: int = 255, height: int = 64, width: int = 64
) -> np.ndarray:
    """A grey frame with a white (or `value`) rectangle: the tiny model's 'defect'."""
    image = grey_frame(height, width)
    x1, y1, x2, y2 = box_xyxy
    image[y1:y2, x1:x2] = value
    return image
