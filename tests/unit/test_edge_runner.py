"""ONNX Runtime runner on the tiny artifact: manifest checks at load, outputs, providers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from benchmarks.stand_ins.artifact import build_graph, frame_with_patch, grey_frame
from edge.runners.onnxruntime_runner import OnnxRuntimeRunner, provider_list
from eiad.errors import ArtifactError
from eiad.manifest import MANIFEST_NAME, file_entry, load_manifest, write_manifest
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)


def test_runner_returns_every_manifest_output_with_batch_first(tiny_artifact):
    runner = OnnxRuntimeRunner(tiny_artifact, providers=["CPUExecutionProvider"])
    # an 8x8 dark patch: a 4x4 one moves the image mean by only half a grey level, which
    # leaves the tiny model's bright/dark class at a coin toss (softmax of ~0)
    batch = np.stack([grey_frame(), frame_with_patch((8, 8, 16, 16)), frame_with_patch((0, 0, 8, 8), value=0)])
    out = runner.run(batch)
    assert set(out) == {"anomaly_map", "image_score", "class_probs", "vision_features"}
    assert out["anomaly_map"].shape == (3, 1, 64, 64)
    # the good part's faint texture (+-4 grey levels) scores ~0.035, far below the 0.5 threshold
    assert (
        out["image_score"][0] < 0.05
        and out["image_score"][1] == pytest.approx(1.0)
        and out["image_score"][2] == pytest.approx(1.0)
    )
    assert out["class_probs"][1].argmax() == 0 and out["class_probs"][2].argmax() == 1  # bright vs dark
    assert runner.max_batch is None and runner.provider == "CPUExecutionProvider"


def test_auto_chain_keeps_only_available_providers_in_order(tmp_path):
    chain = provider_list("auto", ["CPUExecutionProvider", "TensorrtExecutionProvider"], tmp_path / "cache", fp16=True)
    assert chain[0][0] == "TensorrtExecutionProvider" and chain[0][1]["trt_engine_cache_enable"] is True
    assert chain[0][1]["trt_engine_cache_path"] == str(tmp_path / "cache") and chain[1] == "CPUExecutionProvider"


def test_unknown_provider_is_a_clear_error(tiny_artifact):
    with pytest.raises(ArtifactError, match="CUDAExecutionProvider.*not offered"):
        OnnxRuntimeRunner(tiny_artifact, providers=["CUDAExecutionProvider"])


def _copy_with_manifest_edit(src, dst, edit):
    shutil.copytree(src, dst)
    data = json.loads((dst / MANIFEST_NAME).read_text())
    edit(data)
    (dst / MANIFEST_NAME).write_text(json.dumps(data))
    return dst


def test_manifest_input_size_mismatch_is_refused_at_load(tiny_artifact, tmp_path):
    artifact = _copy_with_manifest_edit(tiny_artifact, tmp_path / "a", lambda d: d["input"].update(height=32))
    with pytest.raises(ArtifactError, match=r"shape .*manifest says \[batch, 32, 64, 3\]"):
        OnnxRuntimeRunner(artifact, providers="auto")


def test_manifest_output_the_engine_lacks_is_refused(tiny_artifact, tmp_path):
    def edit(d):
        d["outputs"].append({"name": "extra_head", "shape": ["batch"], "dtype": "float32"})

    artifact = _copy_with_manifest_edit(tiny_artifact, tmp_path / "b", edit)
    with pytest.raises(ArtifactError, match="extra_head"):
        OnnxRuntimeRunner(artifact)


def test_tampered_onnx_is_refused_by_sha256(tiny_artifact, tmp_path):
    artifact = tmp_path / "c"
    shutil.copytree(tiny_artifact, artifact)
    with open(artifact / "vision.onnx", "r+b") as handle:
        handle.seek(20)
        handle.write(b"\x00")
    with pytest.raises(ArtifactError, match="sha256"):
        OnnxRuntimeRunner(artifact)


def test_fixed_batch_engine_reports_its_batch(tiny_artifact, tmp_path):
    import onnx

    artifact = tmp_path / "fixed"
    shutil.copytree(tiny_artifact, artifact)
    onnx.save(build_graph(64, 64, batch=2), str(artifact / "vision.onnx"))
    manifest = load_manifest(artifact, verify_files=False)
    write_manifest(
        artifact,
        manifest.model_copy(update={"files": {"vision.onnx": file_entry(artifact / "vision.onnx", "vision_onnx")}}),
    )
    runner = OnnxRuntimeRunner(artifact)
    assert runner.max_batch == 2
