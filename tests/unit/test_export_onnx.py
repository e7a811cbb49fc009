"""Vision engine export: checker, dynamic batch, parity with torch, manifest hashes, refusals."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from eiad.errors import ArtifactError
from eiad.manifest import load_manifest
from tests.unit.test_llm_fixtures import TinyEngine, meta, parity_images, vision_artifact  # noqa: F401

pytestmark = pytest.mark.slow


def test_exported_graph_passes_checker_and_runs_batch_4(vision_artifact, parity_images):  # noqa: F811
    import onnx
    import onnxruntime as ort

    # given the tiny engine exported with an example batch of 2
    _, art = vision_artifact
    onnx.checker.check_model(str(art / "vision.onnx"))
    session = ort.InferenceSession(str(art / "vision.onnx"))
    # when batch 4 and batch 1 run
    four = session.run(None, {"image": parity_images[:4]})
    one = session.run(None, {"image": parity_images[:1]})
    # then the batch axis follows the input and the outputs keep their names
    assert [o.name for o in session.get_outputs()] == ["anomaly_map", "image_score", "class_probs", "vision_features"]
    assert four[0].shape == (4, 1, 64, 64) and four[1].shape == (4,) and four[2].shape == (4, 3)
    assert one[0].shape[0] == 1
    np.testing.assert_allclose(one[0][0], four[0][0], atol=1e-5)


def test_onnx_matches_torch_within_stated_tolerances(vision_artifact, parity_images):  # noqa: F811
    import json

    import onnxruntime as ort

    from export.onnx_vision import run_onnx, run_torch

    engine, art = vision_artifact
    torch_out = run_torch(engine, parity_images)
    onnx_out = run_onnx(ort.InferenceSession(str(art / "vision.onnx")), parity_images)
    for name in torch_out:
        assert np.abs(torch_out[name] - onnx_out[name]).max() <= 1e-3, name
    report = json.loads((art / "parity_vision.json").read_text())["result"]
    assert report["verdict_agreement"] == 1.0 and report["mask_iou_mean"] >= 0.99 and report["images"] == 6


def test_manifest_carries_contract_and_verifies(vision_artifact):  # noqa: F811
    from export.verify import verify_artifact

    _, art = vision_artifact
    manifest = load_manifest(art, verify_files=True)
    assert manifest.input.height == 64 and manifest.input.channel_order == "BGR"
    assert manifest.class_names == ["crack", "hole", "scratch"]
    assert manifest.thresholds.pixel == 0.5
    assert {"torch", "onnx", "onnxruntime"} <= set(manifest.versions)
    assert manifest.output("anomaly_map").shape[0] == "batch"
    assert "vision.onnx" in manifest.files
    assert any("loaded vision.onnx" in line for line in verify_artifact(art))


@pytest.mark.parametrize("damage", ["tamper", "truncate", "delete"])
def test_damaged_file_is_refused_with_its_name(vision_artifact, tmp_path, damage):  # noqa: F811
    from export.verify import verify_artifact

    _, art = vision_artifact
    copy = tmp_path / "copy"
    shutil.copytree(art, copy)
    target = copy / "vision.onnx"
    data = target.read_bytes()
    if damage == "tamper":
        target.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    elif damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    else:
        target.unlink()
    with pytest.raises(ArtifactError, match="vision.onnx"):
        verify_artifact(copy)


def test_refuses_to_overwrite_without_force_and_foreign_dirs(vision_artifact, tmp_path):  # noqa: F811
    from export.artifact import inside, prepare_output_dir

    _, art = vision_artifact
    copy = tmp_path / "again"
    shutil.copytree(art, copy)
    with pytest.raises(ArtifactError, match="--force"):
        prepare_output_dir(copy, force=False)
    assert (copy / "vision.onnx").is_file()  # nothing lost
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="not an export artifact"):
        prepare_output_dir(foreign, force=True)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(ArtifactError, match="outside"):
        inside(copy, "../escape.onnx")
    assert prepare_output_dir(copy, force=True) == copy.resolve() and not any(copy.iterdir())


def test_parity_failure_is_loud():
    from export.parity import check_vision_parity

    ref = {"anomaly_map": np.zeros((2, 1, 4, 4)), "image_score": np.array([0.2, 0.8]),
           "class_probs": np.full((2, 3), 1 / 3), "vision_features": np.zeros((2, 2, 2))}
    bad = dict(ref, image_score=np.array([0.2, 0.3]))  # one verdict flips at 0.5
    with pytest.raises(ArtifactError, match="verdict agreement 50.00%"):
        check_vision_parity(ref, bad, 0.5, 0.5, "test")


def test_cli_help_needs_no_torch():
    import subprocess
    import sys

    code = "import sys; sys.modules['torch']=None; from eiad.cli import main; sys.exit(main(['export','onnx','--help']))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--checkpoint" in proc.stdout
