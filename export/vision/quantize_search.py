"""Sensitivity-guided int8: which Conv/MatMul/Gemm nodes stay float, chosen by measurement.

1. Calibrate activation ranges once (cached, so every later quantization reuses them).
2. Sensitivity: quantize ONE node at a time and measure the damage on probe images (line
   images from the calibration side of the split, never the held-out parity images), as
   the worst ratio of the gate's metrics to their tolerances (score, class probs, 1 - mask
   IoU, 1 - verdict agreement). A node whose int8 alone moves the outputs most ranks first.
3. Search: keep the k most sensitive nodes float for k in SCHEDULE (never more than half
   of them) until the parity gate passes; at most len(SCHEDULE) tries, so the held-out gate
   is consulted a bounded number of times and the node ranking never sees it.

Measured on the demo artifact (docs/export.md): one node (the localizer stem's second conv)
alone costs 4x the score tolerance; keeping the 16 most sensitive of 50 nodes float passes
(8 did not).
Not thread-safe: one search per destination.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SCHEDULE = (0, 1, 2, 4, 8, 16)  # nodes kept float per try: bounded, roughly doubling


@dataclass(frozen=True)
class SearchResult:
    kept_float: tuple[str, ...]  # the sensitive nodes left in float (attention's activation MatMuls come on top)
    sensitivity: dict[str, float]  # node -> worst metric / tolerance with only that node int8, on the probe images
    tries: tuple[tuple[int, tuple[str, ...]], ...]  # (nodes kept float, gate failures) per try, in order


def quantizable_nodes(model) -> list[str]:
    """Conv/MatMul/Gemm nodes with a constant weight: the ones the int8 recipe may quantize."""
    from export.vision.quantize_graph import QUANTIZED_OPS, activation_matmuls

    activation = set(activation_matmuls(model))
    return [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS and n.name not in activation]


def badness(reference: dict, candidate: dict, thresholds, tolerances) -> float:
    """Worst ratio of a gate metric to its tolerance (>= 1 fails the gate on these images)."""
    from export.vision.parity import compare

    r = compare(reference, candidate, thresholds.image_score, thresholds.pixel, "probe", tolerances)
    return max(
        r.score_max_abs / max(1e-9, tolerances.score_abs),
        r.probs_max_abs / max(1e-9, tolerances.probs_abs),
        (1 - r.mask_iou_mean) / max(1e-9, 1 - tolerances.min_mask_iou),
        (1 - r.verdict_agreement) / max(1e-9, 1 - tolerances.min_verdict_agreement),
    )


def node_sensitivity(
    src_onnx: Path, quantize: Callable, probe: np.ndarray, thresholds, tolerances, work: Path
) -> dict[str, float]:
    """Damage of each node quantized alone on `probe` images; `quantize(dst, only=[node])` writes a graph."""
    import onnx
    from tqdm import tqdm

    from export.vision.exporter import cpu_session, run_onnx

    nodes = quantizable_nodes(onnx.load(str(src_onnx), load_external_data=False))
    reference = run_onnx(cpu_session(src_onnx), probe)
    scores = {}
    for node in tqdm(nodes, desc="int8 sensitivity per node", unit="node", leave=False):
        one = work / "one_node.onnx"
        quantize(one, only=[node])
        scores[node] = badness(reference, run_onnx(cpu_session(one), probe), thresholds, tolerances)
    return dict(sorted(scores.items(), key=lambda item: -item[1]))


def search(
    src_onnx: Path,
    dst_onnx: Path,
    quantize: Callable,
    probe: np.ndarray,
    gate: Callable,
    thresholds,
    tolerances,
    work: Path,
    schedule: tuple[int, ...] = SCHEDULE,
) -> SearchResult:
    """Keep the most sensitive nodes float, fewest first, until `gate(dst_onnx)` returns no failures.

    `quantize(dst, only=None, keep_float=())` writes a graph from cached ranges; `gate(path)`
    returns the held-out parity failures (empty = pass). On no pass, `dst_onnx` holds the last
    try and the result's last try lists its failures: the caller refuses it.
    """
    sensitivity = node_sensitivity(src_onnx, quantize, probe, thresholds, tolerances, work)
    ranked = list(sensitivity)
    limit = len(ranked) // 2  # past half the nodes float, int8 buys little: the gate fails, fp16 is the answer
    tries = []
    for k in schedule:
        kept = tuple(ranked[: min(k, limit)])
        quantize(dst_onnx, keep_float=kept)
        failures = tuple(gate(dst_onnx))
        tries.append((len(kept), failures))
        log.info("int8 with %d sensitive node(s) float: %s", len(kept), "; ".join(failures) or "gate passes")
        if not failures or k >= limit:
            break
    return SearchResult(kept, sensitivity, tuple(tries))


def pick_and_search(
    src_onnx: Path,
    dst_onnx: Path,
    calibration: np.ndarray,
    input_name: str,
    symmetric: bool,
    gate: Callable,
    thresholds,
    tolerances,
    work: Path,
) -> tuple[str, SearchResult]:
    """(calibration method, search result): every 4th calibration image probes, the rest set ranges;
    MinMax and Percentile 99.99 are both calibrated and the one with less probe damage is searched."""
    from export.vision.exporter import cpu_session, run_onnx
    from export.vision.quantize_graph import quantize_int8

    probe = calibration[3::4] if len(calibration) >= 4 else calibration
    ranges = np.delete(calibration, np.arange(3, len(calibration), 4), axis=0) if len(calibration) >= 4 else calibration
    reference = run_onnx(cpu_session(src_onnx), probe)
    damage = {}
    for method in ("minmax", "percentile"):
        full = work / f"full_{method}.onnx"
        quantize_int8(
            src_onnx, full, ranges, input_name, symmetric, cache=work / f"ranges_{method}.json", method=method
        )
        damage[method] = badness(reference, run_onnx(cpu_session(full), probe), thresholds, tolerances)
    method = min(damage, key=damage.get)
    log.info("calibration probe damage %s: using %s", {k: round(v, 3) for k, v in damage.items()}, method)

    def quantize(dst: Path, only=None, keep_float=()):
        return quantize_int8(
            src_onnx,
            dst,
            ranges,
            input_name,
            symmetric,
            tuple(keep_float),
            only,
            work / f"ranges_{method}.json",
            method,
        )

    return method, search(src_onnx, dst_onnx, quantize, probe, gate, thresholds, tolerances, work)
