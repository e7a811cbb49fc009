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

    from export.vision.exporter import run_onnx, run_torch

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
    from export.artifact import check_output_dir, inside

    _, art = vision_artifact
    copy = tmp_path / "again"
    shutil.copytree(art, copy)
    with pytest.raises(ArtifactError, match="--force"):
        check_output_dir(copy, force=False)
    assert (copy / "vision.onnx").is_file()  # nothing lost
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="not an export artifact"):
        check_output_dir(foreign, force=True)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(ArtifactError, match="outside"):
        inside(copy, "../escape.onnx")
    assert check_output_dir(copy, force=True) == copy.resolve() and (copy / "vision.onnx").is_file()


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _bgr_as_rgb(run_torch):
    """A reference that feeds the model RGB where the graph takes BGR: a real preprocessing bug."""
    return lambda engine, images, batch_size=4: run_torch(engine, np.ascontiguousarray(images[..., ::-1]), batch_size)


def test_failed_export_leaves_the_previous_artifact_byte_identical(
    vision_artifact, parity_images, tmp_path, monkeypatch
):  # noqa: F811
    import export.vision.exporter as ov

    # given a good artifact already in place
    engine, art = vision_artifact
    target = tmp_path / "line1"
    shutil.copytree(art, target)
    before = _snapshot(target)
    # when a re-export with --force fails its parity gate (a channel-order bug)
    monkeypatch.setattr(ov, "run_torch", _bgr_as_rgb(ov.run_torch))
    with pytest.raises(ArtifactError, match="parity with PyTorch failed.*(anomaly map|image score)"):
        ov.export_vision_artifact(engine, meta(), target, parity_images, "photos", force=True)
    # then the earlier artifact is byte-identical and no staging folder is left behind
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["line1"]
    # and a failed first export leaves no folder at all
    with pytest.raises(ArtifactError):
        ov.export_vision_artifact(engine, meta(), tmp_path / "new", parity_images, "photos")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["line1"]


def test_force_replaces_the_artifact_whole(vision_artifact, parity_images, tmp_path):  # noqa: F811
    from export.vision.exporter import export_vision_artifact

    engine, art = vision_artifact
    target = tmp_path / "line1"
    shutil.copytree(art, target)
    (target / "stale.txt").write_text("from an older export")
    export_vision_artifact(engine, meta(0.6, 0.4), target, parity_images, "photos", force=True)
    manifest = load_manifest(target, verify_files=True)
    assert manifest.thresholds.image_score == 0.6 and not (target / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["line1"]


def test_a_score_a_hair_from_the_threshold_does_not_fail_the_export(vision_artifact, parity_images, tmp_path):  # noqa: F811
    import json

    from export.vision.exporter import export_vision_artifact, run_torch

    # given a threshold 1e-7 above one image's PyTorch score: ONNX Runtime's float noise may flip it
    engine, _ = vision_artifact
    score = float(run_torch(engine, parity_images[:1])["image_score"][0])
    out = export_vision_artifact(engine, meta(score + 1e-7, 0.5), tmp_path / "edge", parity_images, "photos")
    # then the export passes and says how many flips it saw inside the band
    report = json.loads((out / "parity_vision.json").read_text())["result"]
    assert report["verdict_agreement"] == 1.0 and report["verdict_band"] == 1e-3
    assert report["verdict_flips_in_band"] in (0, 1) and report["verdict_flip_margin"] <= 1e-3


def test_parity_band_forgives_float_noise_at_the_threshold_but_not_a_real_flip():
    from export.vision.parity import VisionTolerances, check_vision_parity

    ref = {
        "anomaly_map": np.full((2, 1, 4, 4), 0.1),
        "image_score": np.array([0.5 - 1e-7, 0.8]),
        "class_probs": np.full((2, 3), 1 / 3),
        "vision_features": np.zeros((2, 2, 2)),
    }
    ref["anomaly_map"][0, 0, 0, :2] = 0.5 - 1e-7
    noisy = {k: v.copy() for k, v in ref.items()}
    noisy["image_score"][0] += 2e-7  # crosses 0.5
    noisy["anomaly_map"][0, 0, 0, :2] += 2e-7  # two pixels cross the pixel threshold
    report = check_vision_parity(ref, noisy, 0.5, 0.5, "test")
    assert report.verdict_agreement == 1.0 and report.verdict_flips_in_band == 1
    assert report.mask_iou_mean == 1.0 and report.mask_flips_in_band == 2
    assert report.verdict_flip_margin == pytest.approx(1e-7, abs=1e-9)
    # a band of zero counts the same flip
    with pytest.raises(ArtifactError, match="verdict agreement 50.00%"):
        check_vision_parity(ref, noisy, 0.5, 0.5, "test", VisionTolerances(verdict_band=0.0, mask_band=0.0))


def test_parity_failure_is_loud():
    from export.vision.parity import check_vision_parity

    ref = {
        "anomaly_map": np.zeros((2, 1, 4, 4)),
        "image_score": np.array([0.2, 0.8]),
        "class_probs": np.full((2, 3), 1 / 3),
        "vision_features": np.zeros((2, 2, 2)),
    }
    bad = dict(ref, image_score=np.array([0.2, 0.3]))  # one verdict flips at 0.5
    with pytest.raises(ArtifactError, match="verdict agreement 50.00%"):
        check_vision_parity(ref, bad, 0.5, 0.5, "test")


def test_cli_help_needs_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch']=None; from commands.main import main; "
        "sys.exit(main(['export','onnx','--help']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--checkpoint" in proc.stdout
