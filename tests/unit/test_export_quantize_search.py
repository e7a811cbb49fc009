"""Sensitivity-guided int8 (export/vision/quantize_search.py) on the tiny artifact, real ONNX Runtime:
the node ranking, the bounded search keeping the most damaging node float until a real parity
gate passes, and calibration that does not depend on how the images are sliced or ordered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from benchmarks.stand_ins.artifact import build_tiny_artifact, frame_with_patch, grey_frame
from eiad.manifest import load_manifest
from export.vision.parity import VisionTolerances


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return build_tiny_artifact(tmp_path_factory.mktemp("src") / "artifact")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    parts = [
        frame_with_patch((8 + i, 10, 24 + i, 26), 255 if i % 3 else 0) if i % 2 else grey_frame() for i in range(12)
    ]
    return np.stack(parts).astype(np.uint8)


def _quantized_nodes(path: Path) -> set[str]:
    """Nodes fed by a DequantizeLinear (ORT QDQ: their inputs were quantized)."""
    model = onnx.load(str(path))
    dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {
        n.name for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm") and any(i in dq for i in n.input)
    }


def test_calibration_is_the_same_whatever_the_order_or_run(tmp_path, source, frames):
    from export.vision.quantize_graph import quantize_int8

    # given the same images in two orders, quantized twice
    quantize_int8(source / "vision.onnx", tmp_path / "a.onnx", frames, "image", False)
    quantize_int8(source / "vision.onnx", tmp_path / "b.onnx", frames[::-1].copy(), "image", False)
    quantize_int8(source / "vision.onnx", tmp_path / "c.onnx", frames, "image", False)
    # then the graphs are byte-identical: int8 is a function of the image SET only
    assert (
        (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes() == (tmp_path / "c.onnx").read_bytes()
    )
    # and a different set does change it (the check above can fail)
    quantize_int8(source / "vision.onnx", tmp_path / "d.onnx", frames[:1], "image", False)  # grey parts only
    assert (tmp_path / "a.onnx").read_bytes() != (tmp_path / "d.onnx").read_bytes()


def test_search_ranks_by_measured_damage_and_never_floats_everything(tmp_path, source, frames):
    from export.vision.exporter import cpu_session, run_onnx
    from export.vision.quantize_graph import quantize_int8
    from export.vision.quantize_search import badness, quantizable_nodes, search

    src = source / "vision.onnx"
    thresholds = load_manifest(source).thresholds
    probe, held_out, calib = frames[1::3], frames[2::3], frames[0::3]
    tol = VisionTolerances(map_abs=1.0, score_abs=0.15, probs_abs=0.15, features_rel=1.0, min_mask_iou=0.9)

    def quantize(dst, only=None, keep_float=()):
        return quantize_int8(src, dst, calib, "image", False, tuple(keep_float), only, tmp_path / "ranges.json")

    reference = run_onnx(cpu_session(src), held_out)
    gate_calls = []

    def gate(path):  # a real gate no int8 graph can pass: zero tolerance on held-out frames
        gate_calls.append(path)
        out = run_onnx(cpu_session(path), held_out)
        return ["differs"] if badness(reference, out, thresholds, tol) > 0 else []

    # when the gate cannot pass
    result = search(src, tmp_path / "out.onnx", quantize, probe, gate, thresholds, tol, tmp_path)
    # then every quantizable node was measured, the ranking is by damage, and the search stopped
    # at half the nodes float (the tiny graph has one: nothing may be floated) with the failure kept
    assert set(result.sensitivity) == set(quantizable_nodes(onnx.load(str(src))))
    assert list(result.sensitivity.values()) == sorted(result.sensitivity.values(), reverse=True)
    assert result.kept_float == () and result.tries == ((0, ("differs",)),) and len(gate_calls) == 1
    assert _quantized_nodes(tmp_path / "out.onnx")  # the written graph is still int8


def test_search_keeps_the_most_sensitive_nodes_float_until_the_gate_passes(tmp_path, monkeypatch):
    # The tiny artifact has one quantizable node, so the search's success path is shown on a
    # ranking given directly (the measuring of it is tested above on the real graph).
    from export.vision import quantize_search

    ranking = {"stem": 5.0, "head": 3.0, "mid1": 0.4, "mid2": 0.2, "mid3": 0.1, "mid4": 0.0}
    monkeypatch.setattr(quantize_search, "node_sensitivity", lambda *args, **kwargs: dict(ranking))
    written = []

    def quantize(dst, only=None, keep_float=()):
        written.append(tuple(keep_float))

    def gate(path):  # passes once both damaging nodes stay float
        return [] if {"stem", "head"} <= set(written[-1]) else ["image score max abs diff 0.39 > 0.15"]

    result = quantize_search.search(
        tmp_path / "src.onnx",
        tmp_path / "dst.onnx",
        quantize,
        np.zeros((1, 4, 4, 3), np.uint8),
        gate,
        None,
        None,
        tmp_path,
    )
    # then float nodes are added most-damaging first, 0 -> 1 -> 2, and the search stops at the first pass
    assert written == [(), ("stem",), ("stem", "head")]
    assert result.kept_float == ("stem", "head")
    assert [k for k, _ in result.tries] == [0, 1, 2] and result.tries[-1][1] == ()

    # and when nothing passes it stops at half the nodes float, never floating the whole graph
    written.clear()
    result = quantize_search.search(
        tmp_path / "src.onnx",
        tmp_path / "dst.onnx",
        quantize,
        np.zeros((1, 4, 4, 3), np.uint8),
        lambda path: ["never"],
        None,
        None,
        tmp_path,
    )
    assert written == [(), ("stem",), ("stem", "head"), ("stem", "head", "mid1")]
    assert result.tries[-1] == (3, ("never",))
