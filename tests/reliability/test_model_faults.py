"""Model faults: missing, truncated or tampered artifact files, a broken manifest, an
engine for another input size, NaN/inf outputs. Refused at start with a message naming the
file and the fix, or each frame REJECTED with the reason: never a silent OK."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from benchmarks.stand_ins.artifact import build_graph, build_tiny_artifact, frame_with_patch, grey_frame
from edge.pipeline import Pipeline
from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
from edge.sources.watchdog import SourceSet
from eiad.errors import ArtifactError
from eiad.manifest import MANIFEST_NAME, file_entry, load_manifest, write_manifest
from tests.support_edge.fakes import CollectingSink, ListSource
from tests.support_edge.fixtures import nan_artifact, tiny_artifact  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def artifact(tiny_artifact, tmp_path) -> Path:  # noqa: F811
    """A private copy to spoil."""
    return Path(shutil.copytree(tiny_artifact, tmp_path / "artifact"))


def rehash(directory: Path) -> None:
    """What an export would write for the current vision.onnx: the hash check passes."""
    manifest = load_manifest(directory, verify_files=False)
    files = {"vision.onnx": file_entry(directory / "vision.onnx", "vision_onnx")}
    write_manifest(directory, manifest.model_copy(update={"files": files}))


def missing(d: Path) -> None:
    (d / "vision.onnx").unlink()


def truncated(d: Path) -> None:
    data = (d / "vision.onnx").read_bytes()
    (d / "vision.onnx").write_bytes(data[: len(data) // 2])


def tampered(d: Path) -> None:
    data = bytearray((d / "vision.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    (d / "vision.onnx").write_bytes(bytes(data))


def manifest_garbage(d: Path) -> None:
    (d / MANIFEST_NAME).write_text('{"model_id": "x", ')


def manifest_gone(d: Path) -> None:
    (d / MANIFEST_NAME).unlink()


SPOILS = {
    missing: "is missing",
    truncated: "truncated",
    tampered: "sha256",
    manifest_garbage: "not a valid manifest",
    manifest_gone: "not found",
}


@pytest.mark.parametrize("spoil", SPOILS, ids=[f.__name__ for f in SPOILS])
def test_a_spoiled_artifact_is_refused_before_loading_naming_the_file(artifact, spoil):
    spoil(artifact)
    with pytest.raises(ArtifactError) as caught:
        OnnxRuntimeRunner(artifact, providers=["CPUExecutionProvider"])
    message = str(caught.value)
    assert SPOILS[spoil] in message and str(artifact) in message


def test_a_tampered_artifact_stops_eiad_edge_run_with_exit_2_and_the_reason(artifact, tmp_path):
    # given a station config pointing at an artifact whose engine was altered
    tampered(artifact)
    images = tmp_path / "images"
    images.mkdir()
    config = tmp_path / "station.yaml"
    config.write_text(
        f"station_id: st1\nline_id: l1\nartifact: {artifact}\n"
        f"sources:\n  - {{kind: folder, id: cam, path: {images}}}\n"
        "metrics: {enabled: false}\nsequence_file: null\n"
    )
    # when the station starts, then it refuses with a clear one-line reason, no traceback
    done = subprocess.run(
        [sys.executable, "-m", "commands.main", "edge", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "error:" in done.stderr and "sha256" in done.stderr and "Traceback" not in done.stderr


def test_a_rehashed_garbage_engine_is_refused_by_the_loader(artifact):
    # given an engine file that is not ONNX, with a manifest hash that matches it
    (artifact / "vision.onnx").write_bytes(b"\x08\x07not a protobuf graph" * 50)
    rehash(artifact)
    with pytest.raises(ArtifactError, match="ONNX Runtime cannot load"):
        OnnxRuntimeRunner(artifact, providers=["CPUExecutionProvider"])


def test_an_engine_for_another_input_size_is_refused_at_load(artifact):
    # given an artifact whose manifest says 64x64 but whose engine takes 96x128
    onnx.save(build_graph(96, 128), str(artifact / "vision.onnx"))
    rehash(artifact)
    with pytest.raises(ArtifactError) as caught:
        OnnxRuntimeRunner(artifact, providers=["CPUExecutionProvider"])
    assert "shape" in str(caught.value) and "64" in str(caught.value)


def inf_artifact(directory: Path) -> Path:
    """The tiny artifact whose anomaly map gets +inf added (an overflowing fp16 engine)."""
    build_tiny_artifact(directory, poison="nan")
    model = onnx.load(str(directory / "vision.onnx"))
    for node in model.graph.node:
        if node.output == ["nan"]:
            node.attribute[0].t.CopyFrom(numpy_helper.from_array(np.asarray(np.float32(np.inf)), "nan"))
    onnx.save(model, str(directory / "vision.onnx"))
    rehash(directory)
    return directory


@pytest.mark.parametrize("kind", ["nan", "inf"])
def test_non_finite_outputs_reject_every_frame_with_the_reason(kind, nan_artifact, tmp_path):  # noqa: F811
    # given an engine whose outputs are NaN or inf for every pixel
    directory = nan_artifact if kind == "nan" else inf_artifact(tmp_path / "inf")
    runner = OnnxRuntimeRunner(directory, providers=["CPUExecutionProvider"])
    sources = SourceSet(check_interval_s=0.05)
    sources.add("cam", lambda: ListSource("cam", [grey_frame(), frame_with_patch((5, 5, 20, 20)), grey_frame()]))
    sink = CollectingSink()
    stop = threading.Event()
    threading.Timer(20, stop.set).start()
    Pipeline("st1", sources, runner, {"c": sink}).run(stop)
    stop.set()
    # then no frame passes: each is REJECTED, the reason names the output and the NaN/inf count
    assert [r.verdict for r in sink.results] == ["REJECTED"] * 3
    assert all("anomaly_map" in r.reason and "NaN/inf" in r.reason for r in sink.results)
    assert all(r.mask is None for r in sink.results)
