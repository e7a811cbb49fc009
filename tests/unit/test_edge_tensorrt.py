"""The native TensorRT runner: a clear error where TensorRT is missing; parity with ONNX
Runtime on the tiny artifact where it is installed (skips with the reason elsewhere)."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

from benchmarks.stand_ins.artifact import frame_with_patch, grey_frame
from edge.config import TensorRtRunnerConfig
from edge.runners.factory import build_runner
from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
from edge.runners.tensorrt_runner import engine_file
from eiad.errors import ArtifactError
from eiad.manifest import file_entry, load_manifest, write_manifest
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: the missing-package message cannot be shown")
def test_without_tensorrt_the_runner_says_what_to_install(tiny_artifact):
    with pytest.raises(ArtifactError, match="TensorRT 10 and cuda-python.*runner.kind: onnxruntime"):
        build_runner(TensorRtRunnerConfig(kind="tensorrt"), tiny_artifact, load_manifest(tiny_artifact))


def test_the_runner_finds_the_engine_eiad_export_tensorrt_listed(tiny_artifact):
    manifest = load_manifest(tiny_artifact)
    entry = manifest.files["vision.onnx"]

    def with_engines(*names):
        roles = {f"tensorrt/{n}.engine": entry.model_copy(update={"role": f"tensorrt_engine_{n}"}) for n in names}
        return manifest.model_copy(update={"files": {**manifest.files, **roles}})

    assert engine_file(with_engines("fp16")) == "tensorrt/fp16.engine"  # the role the exporter writes
    legacy = {**manifest.files, "vision.engine": entry.model_copy(update={"role": "tensorrt_engine"})}
    assert engine_file(manifest.model_copy(update={"files": legacy})) == "vision.engine"
    with pytest.raises(ArtifactError, match="no TensorRT engine.*eiad export tensorrt"):
        engine_file(manifest)
    with pytest.raises(
        ArtifactError, match="2 TensorRT engines.*tensorrt/fp16.engine, tensorrt/int8.engine.*runner.engine"
    ):
        engine_file(with_engines("fp16", "int8"))


def _build_engine(onnx_path, engine_path) -> None:
    """Build a small engine with the TensorRT 10 builder (dynamic batch 1..4)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        raise RuntimeError("; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, 64, 64, 3), (2, 64, 64, 3), (4, 64, 64, 3))
    config.add_optimization_profile(profile)
    engine_path.write_bytes(bytes(builder.build_serialized_network(network, config)))


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_TRT, reason="TensorRT is not installed (no development or CI machine has it)")
def test_tensorrt_runner_matches_onnxruntime(tiny_artifact, tmp_path):
    artifact = tmp_path / "trt"
    shutil.copytree(tiny_artifact, artifact)
    _build_engine(artifact / "vision.onnx", artifact / "vision.engine")
    manifest = load_manifest(artifact, verify_files=False)
    files = {**manifest.files, "vision.engine": file_entry(artifact / "vision.engine", "tensorrt_engine_fp32")}
    write_manifest(artifact, manifest.model_copy(update={"files": files}))
    runner = build_runner(TensorRtRunnerConfig(kind="tensorrt"), artifact, load_manifest(artifact))
    batch = np.stack([grey_frame(), frame_with_patch((3, 3, 20, 20))])
    got, want = runner.run(batch), OnnxRuntimeRunner(artifact).run(batch)
    runner.close()
    assert runner.max_batch == 4 and not runner.fixed_batch
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, atol=1e-5, err_msg=name)
