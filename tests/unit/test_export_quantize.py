"""`eiad export quantize` on the tiny torch-free artifact: int8 Q/DQ and fp16 artifacts that
the edge runner runs, manifest precision and hashes, llm/ copied, the parity gate, and
`eiad bench engine` over two artifacts. Real ONNX Runtime throughout."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from benchmarks.stand_ins.artifact import build_tiny_artifact, frame_with_patch, grey_frame
from commands.main import main
from eiad.errors import ArtifactError
from eiad.manifest import file_entry, load_manifest, write_manifest
from export.vision.parity import VisionTolerances


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The tiny fp32 artifact plus an llm/ file listed in its manifest."""
    art = build_tiny_artifact(tmp_path_factory.mktemp("src") / "artifact")
    (art / "llm").mkdir()
    (art / "llm" / "llm_config.json").write_text('{"hidden": 8}\n')
    manifest = load_manifest(art)
    files = {**manifest.files, "llm/llm_config.json": file_entry(art / "llm" / "llm_config.json", "llm_config")}
    write_manifest(art, manifest.model_copy(update={"files": files}))
    return art


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """12 line images: grey parts, half with a white or black patch (the tiny model's defects)."""
    folder = tmp_path_factory.mktemp("images")
    for i in range(12):
        # patches in both halves (even files calibrate, odd files are held out), white and black
        image = frame_with_patch((8 + i, 10, 24 + i, 26), 255 if i % 3 else 0) if (i // 2) % 2 else grey_frame()
        cv2.imwrite(str(folder / f"part_{i:02d}.png"), image)
    return folder


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_quantize_writes_an_artifact_the_edge_runner_runs(tmp_path, source, images, precision, capsys):
    from edge.runners.onnxruntime_runner import OnnxRuntimeRunner

    out = tmp_path / precision
    # when
    code = main(
        ["export", "quantize", str(source), "--precision", precision, "--images", str(images), "--out", str(out)]
    )
    # then: a verified artifact with the new precision, the llm/ file copied and re-hashed
    assert code == 0
    manifest = load_manifest(out, verify_files=True)
    assert manifest.precision == precision and manifest.model_id == "tiny-eiad-test"
    assert set(manifest.files) == {"vision.onnx", "parity_vision.json", "llm/llm_config.json"}
    assert (out / "llm" / "llm_config.json").read_text() == '{"hidden": 8}\n'
    graph = onnx.load(str(out / "vision.onnx"))
    ops = {n.op_type for n in graph.graph.node}
    if precision == "int8":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    else:
        casts = [a.i for n in graph.graph.node if n.op_type == "Cast" for a in n.attribute if a.name == "to"]
        assert onnx.TensorProto.FLOAT16 in casts  # compute in fp16, cast back to float32 at the outputs
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8  # the edge still feeds uint8
    report = json.loads((out / "parity_vision.json").read_text())
    assert report["precision"] == precision and report["result"]["images"] == 6
    assert report["result"]["verdict_agreement"] >= 0.95
    # the edge runner runs it unchanged: a patch is NG, a grey part OK
    runner = OnnxRuntimeRunner(out, providers=["CPUExecutionProvider"])
    outputs = runner.run(np.stack([grey_frame(), frame_with_patch((20, 20, 40, 40))]))
    assert outputs["anomaly_map"].dtype == np.float32
    assert outputs["image_score"][0] < 0.5 < outputs["image_score"][1]
    runner.close()
    printed = capsys.readouterr().out
    assert "fp32" in printed and precision in printed and "ms/image" in printed


def test_parity_gate_rejects_and_writes_nothing(tmp_path, source, images):
    from export.vision.parity import load_images
    from export.vision.quantize import quantize_artifact

    paths = sorted(images.iterdir())
    calib, held_out = load_images(paths[0::2], 64, 64), load_images(paths[1::2], 64, 64)
    strict = VisionTolerances(map_abs=0.0, score_abs=0.0, probs_abs=0.0, features_rel=0.0)
    out = tmp_path / "int8"
    with pytest.raises(ArtifactError, match=r"int8 parity with the fp32 source failed on 6 images.*was not written"):
        quantize_artifact(source, out, "int8", calib, held_out, "test images", tolerances=strict)
    assert not out.exists() and not list(tmp_path.glob(".int8.*"))


def test_garbage_calibration_fails_the_default_gate(tmp_path, source, images):
    from export.vision.parity import load_images
    from export.vision.quantize import quantize_artifact

    # given calibration frames of one flat value: every activation range collapses
    held_out = load_images(sorted(images.iterdir())[1::2], 64, 64)
    garbage = np.full((4, 64, 64, 3), 128, np.uint8)
    with pytest.raises(ArtifactError, match="parity with the fp32 source failed"):
        quantize_artifact(source, tmp_path / "bad", "int8", garbage, held_out, "test images")


def test_refuses_a_derived_or_corrupt_source_and_empty_images(tmp_path, source, images, capsys):
    fp16 = tmp_path / "fp16"
    assert (
        main(["export", "quantize", str(source), "--precision", "fp16", "--images", str(images), "--out", str(fp16)])
        == 0
    )
    capsys.readouterr()
    # a derived artifact is not a source
    assert (
        main(
            [
                "export",
                "quantize",
                str(fp16),
                "--precision",
                "int8",
                "--images",
                str(images),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "already a fp16 artifact" in capsys.readouterr().err
    # a corrupt source is named
    (fp16 / "vision.onnx").write_bytes(b"broken")
    assert (
        main(
            [
                "export",
                "quantize",
                str(fp16),
                "--precision",
                "int8",
                "--images",
                str(images),
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert "vision.onnx" in capsys.readouterr().err
    # no images
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        main(
            [
                "export",
                "quantize",
                str(source),
                "--precision",
                "int8",
                "--images",
                str(empty),
                "--out",
                str(tmp_path / "z"),
            ]
        )
        == 2
    )
    assert "no images found" in capsys.readouterr().err


def test_symmetric_int8_has_zero_points_tensorrt_takes(tmp_path, source, images):
    from export.vision.parity import load_images
    from export.vision.quantize_graph import asymmetric_quantization, quantize_int8

    calib = load_images(sorted(images.iterdir())[0::2], 64, 64)
    quantize_int8(source / "vision.onnx", tmp_path / "a.onnx", calib, "image", symmetric=False)
    quantize_int8(source / "vision.onnx", tmp_path / "s.onnx", calib, "image", symmetric=True)
    assert asymmetric_quantization(tmp_path / "a.onnx")  # uint8 zero points: ONNX Runtime only
    assert not asymmetric_quantization(tmp_path / "s.onnx")  # int8, zero point 0: TensorRT too
    # the TensorRT builder takes the symmetric graph as is and refuses the asymmetric one, and a contradicting request
    from export.tensorrt.build import check_graph_precision

    assert check_graph_precision(tmp_path / "s.onnx", "int8", "int8") is True
    assert check_graph_precision(tmp_path / "s.onnx", "fp32", "int8") is False
    with pytest.raises(ArtifactError, match="--symmetric"):
        check_graph_precision(tmp_path / "a.onnx", "int8", "int8")
    with pytest.raises(ArtifactError, match="build it with --precision int8"):
        check_graph_precision(tmp_path / "s.onnx", "int8", "fp16")


def test_bench_engine_reports_two_artifacts_with_agreement(tmp_path, source, images):
    int8 = tmp_path / "int8"
    assert (
        main(["export", "quantize", str(source), "--precision", "int8", "--images", str(images), "--out", str(int8)])
        == 0
    )
    out = tmp_path / "bench"
    code = main(
        [
            "bench",
            "engine",
            str(source),
            str(int8),
            "--backends",
            "ort-cpu",
            "--batch",
            "1",
            "--min-duration-s",
            "0.1",
            "--warmup",
            "2",
            "--eval-images",
            "8",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    configs = {c["name"]: c for c in result["configurations"]}
    assert set(configs) == {"fp32 ort-cpu b1", "int8 ort-cpu b1"}
    assert configs["int8 ort-cpu b1"]["precision"] == "int8"
    assert configs["int8 ort-cpu b1"]["accuracy"]["reference"].startswith("fp32 ort-cpu")
    assert configs["int8 ort-cpu b1"]["accuracy"]["images"] == 8
    assert [c["name"] for c in result["comparisons"]] == ["int8 ort-cpu b1 / fp32 ort-cpu b1"]
    assert result["comparisons"][0]["ratio"] > 0
