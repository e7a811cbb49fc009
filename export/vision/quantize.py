"""`eiad export quantize`: derive an int8 (Q/DQ) or fp16 artifact from an fp32 one.

Precision lives in the ONNX graph, not in a runtime flag, so one file serves ONNX
Runtime (CPU/CUDA/TensorRT EPs) and TensorRT 11, which dropped the builder's INT8/FP16
flags (TensorRT 10 builds it too, see export/tensorrt/build.py).

int8: `onnxruntime.quantization.quantize_static`, QDQ format, per-channel int8 weights,
activation ranges calibrated on real line images fed as the graph's own input (uint8 BGR
NHWC at the manifest size). Only Conv/MatMul/Gemm with a constant weight are candidates;
activation x activation MatMuls (attention) stay float. export/vision/quantize_search.py picks
the calibration method (MinMax or Percentile 99.99) and keeps the most sensitive nodes in
float until the gate passes (measured on the demo artifact: all-int8 gives 93 % verdict
agreement; 16 of 50 nodes float give 96.6 %, mask IoU 0.987). Activations are uint8 with
a zero point (asymmetric) by default; `symmetric=True` gives zero-point-0 int8
activations, which TensorRT requires, at a measured accuracy cost (the gate decides).
fp16: `onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)`:
the uint8 input and float32 outputs stay as the edge feeds and reads them.

Parity gate: the candidate against its fp32 source on held-out images (tolerances below,
reused checks from export/vision/parity.py); past them nothing is written to the destination.
Not thread-safe: one quantization per destination.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eiad.errors import ArtifactError
from eiad.manifest import MANIFEST_NAME, VISION_FEATURES, load_manifest
from export.vision.parity import VisionParity, VisionTolerances, compare
from export.vision.quantize_graph import QUANTIZED_OPS, activation_matmuls, check_same_io, convert_fp16, onnx_model

log = logging.getLogger(__name__)

PRECISIONS = ("int8", "fp16")
# Per-pixel and per-feature max abs diffs are loose for int8 (one pixel near the sigmoid's
# steep part moves a lot): the mask IoU, score and verdicts are what the line sees. The
# float-noise bands stay at fp32's 1e-3: a quantization's own error is what the rates judge.
TOLERANCES = {
    "int8": VisionTolerances(
        map_abs=1.0,
        score_abs=0.15,
        probs_abs=0.15,
        features_rel=1.0,
        min_mask_iou=0.90,
        min_verdict_agreement=0.95,
        verdict_band=1e-3,
        mask_band=1e-3,
    ),
    "fp16": VisionTolerances(
        map_abs=5e-2,
        score_abs=1e-2,
        probs_abs=1e-2,
        features_rel=1e-2,
        min_mask_iou=0.98,
        min_verdict_agreement=0.95,
        verdict_band=1e-3,
        mask_band=1e-3,
    ),
}
# Files of the source that describe its fp32 graph: replaced, not copied.
_REPLACED_ROLES = ("vision_onnx", "vision_onnx_data", "parity_report")
_DROPPED_DIRS = ("tensorrt", "trt_cache")  # engines built from the fp32 graph


@dataclass(frozen=True)
class QuantizeSummary:
    artifact: Path
    precision: str
    source_bytes: int
    quantized_bytes: int
    parity: VisionParity
    source_ms_per_image: float  # batch 1, ONNX Runtime CPU, this machine
    quantized_ms_per_image: float
    calibration_images: int  # 0 for fp16
    excluded_nodes: tuple[str, ...]


def ms_per_image(session, image: np.ndarray, input_name: str, min_duration_s: float = 1.0) -> float:
    """Mean ms of one batch-1 call after 3 warm-up calls (single figure for the summary table)."""
    for _ in range(3):
        session.run(None, {input_name: image})
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < min_duration_s or calls < 5:
        session.run(None, {input_name: image})
        calls += 1
    return 1000 * (time.perf_counter() - started) / calls


def source_artifact(src: Path):
    """(resolved dir, manifest, vision onnx relative path) of a verified fp32 artifact."""
    src = Path(src).expanduser().resolve()
    manifest = load_manifest(src, verify_files=True)  # missing / corrupt files: ArtifactError naming the file
    if manifest.precision != "fp32":
        raise ArtifactError(
            f"{src} is already a {manifest.precision} artifact: quantize the fp32 artifact "
            "'eiad export onnx' made, not a derived one"
        )
    onnx_rel = next((k for k, e in manifest.files.items() if e.role == "vision_onnx"), None)
    if onnx_rel is None:
        raise ArtifactError(f"{src}/{MANIFEST_NAME} lists no vision_onnx: export the vision engine first")
    return src, manifest, onnx_rel


def check_destination(dst: Path, src: Path, force: bool) -> Path:
    """Refuse early what export/artifact.staged_artifact would refuse, and the source itself."""
    from export.artifact import check_output_dir

    dst = Path(dst).expanduser().resolve()
    if dst == src:
        raise ArtifactError(f"--out {dst} is the source artifact: choose a new folder")
    return check_output_dir(dst, force)


def quantize_artifact(
    src: Path,
    dst: Path,
    precision: str,
    calibration: np.ndarray,
    parity_images: np.ndarray,
    parity_source: str,
    force: bool = False,
    symmetric: bool = False,
    tolerances: VisionTolerances | None = None,
) -> QuantizeSummary:
    """The whole `eiad export quantize`: verified fp32 source -> candidate graph -> checks ->
    parity gate on `parity_images` (uint8 BGR NHWC, held out from `calibration`) -> DST.

    DST is written only after the gate passes (built in a staging folder beside it, then
    moved in), so a failed quantization never replaces a good artifact. Raises
    ArtifactError past `tolerances` (default TOLERANCES[precision]) with every failure.
    """
    from export.artifact import staged_artifact, write_new_manifest
    from export.vision.exporter import PARITY_REPORT, cpu_session, run_onnx

    if precision not in PRECISIONS:
        raise ArtifactError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    src, manifest, onnx_rel = source_artifact(src)
    dst = check_destination(dst, src, force)
    tolerances = tolerances or TOLERANCES[precision]
    name = manifest.input.name
    with staged_artifact(dst, force) as work:
        candidate = work / onnx_rel
        candidate.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        source_session = cpu_session(src / onnx_rel)
        reference = run_onnx(source_session, parity_images)
        scale = float(np.abs(reference[VISION_FEATURES]).max())

        def gate(path: Path):
            report = compare(
                reference,
                run_onnx(cpu_session(path), parity_images),
                manifest.thresholds.image_score,
                manifest.thresholds.pixel,
                parity_source,
                tolerances,
            )
            return report.failures(tolerances, features_scale=scale)

        excluded: list[str] = []
        found, method = None, None
        if precision == "int8":
            from export.vision.quantize_search import pick_and_search

            with tempfile.TemporaryDirectory(prefix="search.", dir=work) as scratch:
                method, found = pick_and_search(
                    src / onnx_rel,
                    candidate,
                    calibration,
                    name,
                    symmetric,
                    gate,
                    manifest.thresholds,
                    tolerances,
                    Path(scratch),
                )
            excluded = activation_matmuls(onnx_model(src / onnx_rel)) + list(found.kept_float)
        else:
            convert_fp16(src / onnx_rel, candidate)
        check_same_io(src / onnx_rel, candidate)
        log.info("%s graph written in %.1f s", precision, time.perf_counter() - started)
        candidate_session = cpu_session(candidate)
        report = compare(
            reference,
            run_onnx(candidate_session, parity_images),
            manifest.thresholds.image_score,
            manifest.thresholds.pixel,
            parity_source,
            tolerances,
        )
        failures = report.failures(tolerances, features_scale=scale)
        if failures:
            raise ArtifactError(
                f"{precision} parity with the fp32 source failed on {report.images} images from {parity_source}: "
                + "; ".join(failures)
                + f". {dst} was not written: do not deploy this quantization"
                + (" (try without --symmetric, or fp16)" if symmetric else " (try more --calibration-images, or fp16)")
            )
        timings = [ms_per_image(s, parity_images[:1], name) for s in (source_session, candidate_session)]
        roles = _copy_rest(src, work, manifest)
        roles[onnx_rel] = "vision_onnx"
        _write_parity(
            work / PARITY_REPORT,
            report,
            tolerances,
            precision,
            src,
            len(calibration),
            excluded,
            symmetric,
            found,
            method,
        )
        roles[PARITY_REPORT] = "parity_report"
        write_new_manifest(work, manifest.model_copy(update={"precision": precision}), roles)
    log.info("%s artifact written: %s", precision, dst)
    return QuantizeSummary(
        dst,
        precision,
        (src / onnx_rel).stat().st_size,
        (dst / onnx_rel).stat().st_size,
        report,
        timings[0],
        timings[1],
        len(calibration) if precision == "int8" else 0,
        tuple(excluded),
    )


def _copy_rest(src: Path, work: Path, manifest) -> dict[str, str]:
    """Copy every listed file except the fp32 graph, its parity report and engines; return their roles."""
    roles = {}
    for relative, entry in manifest.files.items():
        if (
            entry.role in _REPLACED_ROLES
            or entry.role.startswith("tensorrt_engine")
            or relative.split("/")[0] in _DROPPED_DIRS
        ):
            continue
        target = work / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / relative, target)
        roles[relative] = entry.role
    return roles


def _write_parity(
    path: Path,
    report: VisionParity,
    tolerances: VisionTolerances,
    precision: str,
    src: Path,
    calibration_images: int,
    excluded: list[str],
    symmetric: bool,
    found=None,
    method=None,
) -> None:
    import json

    payload = {
        "result": asdict(report),
        "tolerances": asdict(tolerances),  # the same keys as 'eiad export onnx' writes
        "reference": f"fp32 source artifact {src} on ONNX Runtime CPU",
        "precision": precision,
        "calibration_images": calibration_images if precision == "int8" else 0,
        "int8_recipe": {
            "format": "QDQ",
            "weights": "int8 per-channel symmetric",
            "activations": "int8 symmetric" if symmetric else "uint8 asymmetric",
            "quantized_ops": list(QUANTIZED_OPS),
            "kept_float": excluded,
            "calibration_method": method,
            "sensitive_kept_float": list(found.kept_float) if found else [],
            "why": "activation x activation MatMuls always; the others ranked most sensitive "
            "(node quantized alone: worst gate metric / tolerance on probe images)",
            "sensitivity": {k: round(v, 4) for k, v in found.sensitivity.items()} if found else {},
            "tries": [{"kept_float": k, "failures": list(f)} for k, f in found.tries] if found else [],
        }
        if precision == "int8"
        else None,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def image_sets(
    split: Path | None,
    images: Path | None,
    max_images: int,
    calibration_limit: int,
) -> tuple[list[Path], list[Path], str]:
    """(calibration paths, held-out parity paths, parity source).

    A split calibrates on its 'train' images and checks parity on its 'test'
    images; a folder is split in two (even files calibrate, odd files check).
    """
    from eiad.errors import DataError
    from export.vision.parity import image_paths

    if split is not None:
        from eiad.split import load_split

        parity, source = image_paths(split, None, max_images)
        calibration = [Path(e.image) for e in load_split(split).train][:calibration_limit]
        if not calibration:
            raise DataError(f"{split} has no 'train' images to calibrate int8 ranges on")
        return calibration, parity, source
    every, source = image_paths(None, images, 2 * max(max_images, calibration_limit))
    if len(every) < 2:
        raise DataError(f"{source} has {len(every)} image(s): give at least 2 (one to calibrate, one held out)")
    return every[0::2][:calibration_limit], every[1::2][:max_images], f"{source} (odd-numbered files, held out)"
