"""The torch runner (runner.kind: torch): a trained tiny checkpoint and the artifact exported
from it give the same outputs through PyTorch as through ONNX Runtime, and a checkpoint that
is not the artifact's own is refused. On this CPU-only machine it runs on device cpu; the
CUDA-graph path runs on a GPU box only (benchmarks/results/other_runs has its figures)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from eiad.errors import ArtifactError, ModelError
from tests.support.preset_cache import preset_cache  # noqa: F401 (fixture)
from tests.unit.test_localization_support import make_split

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, preset_cache):  # noqa: F811
    """(checkpoint, artifact, split): a tiny supervised model and its ONNX export."""
    from commands.main import main
    from train.config import TrainConfig
    from train.localization.trainer import train_localization

    root = tmp_path_factory.mktemp("torch_runner")
    split = make_split(root / "line", n_train=8, n_held_out=6, size=64)
    config = TrainConfig(
        backbone="tiny-llava-siglip",
        split=split,
        out_dir=root / "run",
        device="cpu",
        localization={"taps": [1, 3], "epochs": 2, "batch_size": 4, "decoder_channels": 8, "proj_dim": 16},
    )
    checkpoint = train_localization(config).checkpoint
    artifact = root / "artifact"
    assert (
        main(["-q", "export", "onnx", "--checkpoint", str(checkpoint), "--out", str(artifact), "--split", str(split)])
        == 0
    )
    return checkpoint, artifact, split


def _test_images(split, manifest):
    from eiad.split import load_split
    from export.vision.parity import load_images

    return load_images([e.image for e in load_split(split).test], manifest.input.height, manifest.input.width)


def test_the_station_config_builds_a_torch_runner_that_agrees_with_onnx_runtime(trained, tmp_path):
    from edge.config import load_station_config
    from edge.runners.factory import build_runner
    from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
    from eiad.manifest import load_manifest

    checkpoint, artifact, split = trained
    # given a station.yaml naming the torch runner and the export's checkpoint (relative to the file)
    station = tmp_path / "station.yaml"
    shutil.copytree(checkpoint, tmp_path / "checkpoint")
    station.write_text(
        f"station_id: s1\nline_id: l1\nartifact: {artifact}\n"
        "sources: [{kind: folder, id: cam0, path: frames}]\n"
        "runner: {kind: torch, checkpoint: checkpoint, device: cpu, threads: 1}\n",
        encoding="utf-8",
    )
    config = load_station_config(station)
    manifest = load_manifest(artifact)
    # when the station's factory builds it and both runners see the test images, batched and alone
    runner = build_runner(config.runner, artifact, manifest, config.path)
    reference = OnnxRuntimeRunner(artifact, providers=["CPUExecutionProvider"], manifest=manifest)
    images = _test_images(split, manifest)
    got, want = runner.run(images), reference.run(images)
    single = runner.run(images[:1])
    runner.close()
    reference.close()
    # then it runs on torch and every manifest output matches ONNX Runtime's within float noise
    assert runner.provider.startswith("torch cpu") and runner.max_batch is None
    assert set(got) == {o.name for o in manifest.outputs}
    for name, value in want.items():
        assert got[name].shape == value.shape and got[name].dtype == np.float32, name
        np.testing.assert_allclose(got[name], value, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(single["anomaly_map"][0], got["anomaly_map"][0], atol=1e-5)


def test_a_checkpoint_that_is_not_the_artifacts_own_is_refused(trained, tmp_path):
    from edge.runners.torch_runner import TorchRunner

    checkpoint, artifact, _ = trained
    # given a copy of the checkpoint whose calibrated image threshold differs from the artifact's
    other = tmp_path / "other"
    shutil.copytree(checkpoint, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["thresholds"]["image_score"] = 0.123
    (other / "meta.json").write_text(json.dumps(meta))
    # then loading it names the mismatch and says what to point at
    with pytest.raises(
        ArtifactError, match=r"not the checkpoint this artifact was exported from: image_score threshold"
    ):
        TorchRunner(artifact, other, device="cpu")
    with pytest.raises(ArtifactError, match="not a localization checkpoint"):
        TorchRunner(artifact, tmp_path, device="cpu")
    # and a truncated weights file is named, not a bare safetensors error
    damaged = tmp_path / "damaged"
    shutil.copytree(checkpoint, damaged)
    weights = damaged / "localization.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelError, match=r"localization.safetensors is damaged"):
        TorchRunner(artifact, damaged, device="cpu")
