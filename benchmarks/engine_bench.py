"""`eiad bench engine`: runner-only latency and throughput per backend and batch size,
with verdict agreement against a reference backend beside every speed figure.

Per backend: open it (ONNX Runtime through the edge runner; torch eager from a
checkpoint), time `run(batch)` with a warm-up and a minimum duration (device synced
after each call), then run the evaluation images through it and compare verdicts with
the reference (torch eager when given, else the first backend that runs: it is named in
the report). Several artifacts of one model (fp32, int8, fp16) are measured in one run,
configurations named by precision, all against the same reference. Evaluation images: the
test split of a split.json, else random frames
(the report says so: agreement on noise says little about parts).

With `baselines=["anomalib"]` (and a split), anomalib's own PatchCore is fitted on the
split's OK training images and timed through its TorchInferencer / ONNX export on the
same evaluation images in a side venv (benchmarks/baselines/anomalib_baseline.py); its
configurations join the result in group "baseline-anomalib" with ratios against ours.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from benchmarks.backends import Backend, BackendUnavailable, open_backend
from benchmarks.held_out import agreement, engine_maps, evaluation_images, evaluation_labels, evaluation_masks, verdicts
from benchmarks.report import new_result
from benchmarks.stats import cdf_points, summarize_ns
from benchmarks.timing import time_calls
from eiad.errors import DataError
from eiad.manifest import Manifest, load_manifest

if TYPE_CHECKING:
    from benchmarks.baselines.anomalib_baseline import AnomalibOptions

log = logging.getLogger(__name__)


def time_backend(backend: Backend, images: np.ndarray, batch: int, warmup: int, min_duration_s: float) -> dict:
    """One configuration: latency per call of `batch` images, and images per second."""
    reps = -(-batch // len(images))
    stacked = np.ascontiguousarray(np.concatenate([images] * reps)[:batch])
    with tqdm(desc=f"{backend.name} batch {batch}", unit="call", leave=False, mininterval=1.0) as bar:
        timed = time_calls(
            lambda: backend.run(stacked),
            warmup=warmup,
            min_duration_s=min_duration_s,
            sync=backend.sync,
            progress=bar.update,
        )
    latency = summarize_ns(timed.samples_ns)
    return {
        "name": f"{backend.name} b{batch}",
        "group": "engine",
        "series": backend.name,
        "backend": backend.name,
        "device": backend.device,
        "batch": batch,
        "latency_ms": latency.to_dict(),
        "cdf_ms": cdf_points(timed.samples_ms),
        "throughput_per_s": timed.throughput(items_per_call=batch),
        "iterations": timed.iterations,
        "wall_s": timed.wall_s,
        "warmup": warmup,
        "notes": [],
    }


def artifact_labels(manifests: list[Manifest]) -> list[str]:
    """Configuration prefixes: '' for one artifact, else its precision (+ resolution if they differ)."""
    if len(manifests) == 1:
        return [""]
    sizes = {(m.input.width, m.input.height) for m in manifests}
    labels = [m.precision + (f" {m.input.width}x{m.input.height}" if len(sizes) > 1 else "") for m in manifests]
    return [f"{label} " if labels.count(label) == 1 else f"{label}#{i + 1} " for i, label in enumerate(labels)]


def bench_engine(
    artifact: Path | list[Path],
    backends: list[str],
    batches: list[int],
    min_duration_s: float = 5.0,
    warmup: int = 10,
    split: Path | None = None,
    torch_checkpoint: Path | None = None,
    eval_images: int = 32,
    intra_op_threads: int = 0,
    baselines: list[str] | None = None,
    anomalib: AnomalibOptions | None = None,
) -> dict:
    """Time every artifact x available backend x batch, then the requested baselines
    ("anomalib"); returns the result document (report.py).

    Several artifacts (e.g. fp32, int8 and fp16 of one model): configurations are named
    with the artifact's precision, and every one is compared with the same reference (torch
    eager with a checkpoint, else the first artifact's first backend), so the report says
    how much faster int8 is and on how many verdicts it agrees.
    """
    unknown = [b for b in baselines or [] if b != "anomalib"]
    if unknown:
        raise DataError(
            f"unknown baseline(s) {', '.join(map(repr, unknown))} in --baselines: the only one is 'anomalib'"
        )
    artifacts = [Path(a) for a in (artifact if isinstance(artifact, (list, tuple)) else [artifact])]
    manifests = [load_manifest(a) for a in artifacts]
    manifest = manifests[0]
    images, source = evaluation_images(manifest, split, eval_images)
    settings = {
        "artifact": str(artifacts[0]),
        "model_id": manifest.model_id,
        "input": f"{manifest.input.width}x{manifest.input.height}",
        "precision": manifest.precision,
        "backends": backends,
        "batches": batches,
        "min_duration_s": min_duration_s,
        "warmup_calls": warmup,
        "accuracy_images": source,
        "timing": "perf_counter_ns per call, device synced inside the timed region",
    }
    if len(artifacts) > 1:
        settings["artifacts"] = [
            {
                "artifact": str(a),
                "precision": m.precision,
                "input": f"{m.input.width}x{m.input.height}",
                "model_id": m.model_id,
            }
            for a, m in zip(artifacts, manifests)
        ]
    result = new_result("engine", settings)
    # The reference goes first so every other backend is compared with it.
    order = sorted(backends, key=lambda b: 0 if b.startswith("torch") else 1)
    reference: list = [None, ""]
    for path, art_manifest, label in zip(artifacts, manifests, artifact_labels(manifests)):
        art_images = (
            images if art_manifest.input == manifest.input else evaluation_images(art_manifest, split, eval_images)[0]
        )
        for name in order:
            if name.startswith("torch") and path != artifacts[0]:
                continue  # eager torch runs the checkpoint, not the artifact: once is enough
            _measure(
                result,
                f"{label}{name}",
                name,
                path,
                art_manifest,
                art_images,
                batches,
                warmup,
                min_duration_s,
                torch_checkpoint,
                intra_op_threads,
                reference,
            )
    if not result["configurations"]:
        raise DataError("no backend could be measured on this machine: " + "; ".join(result["notes"]))
    reference_verdicts, reference_name = reference
    result["notes"].append(f"accuracy: verdict agreement with {reference_name} on {source}")
    if len(artifacts) > 1:
        result["comparisons"] += precision_comparisons(result["configurations"], artifact_labels(manifests))
    if "anomalib" in (baselines or []):
        settings["baselines"] = ["anomalib"]
        add_anomalib(
            result,
            manifest,
            split,
            images,
            (reference_verdicts, reference_name),
            batches,
            warmup,
            min_duration_s,
            anomalib,
            eval_images,
            artifacts[0],
        )
    return result


def _measure(
    result: dict,
    label: str,
    name: str,
    artifact: Path,
    manifest: Manifest,
    images: np.ndarray,
    batches: list[int],
    warmup: int,
    min_duration_s: float,
    torch_checkpoint: Path | None,
    intra_op_threads: int,
    reference: list,
) -> None:
    """Open one backend on one artifact, check its verdicts against `reference` (set by the
    first backend that runs), time every batch size; unavailable backends become notes."""
    try:
        backend = open_backend(name, artifact, manifest, torch_checkpoint, intra_op_threads)
    except BackendUnavailable as why:
        log.warning("backend %s skipped: %s", label, why)
        result["notes"].append(f"{label} not measured: {why}")
        return
    backend.name = label
    try:
        outcome = verdicts(backend, images, manifest)
        if reference[0] is None:
            reference[0], reference[1] = outcome, f"{label} ({backend.device})"
        accuracy = agreement(reference[0], outcome, reference[1])
        for batch in batches:
            if backend.max_batch and batch != backend.max_batch:
                result["notes"].append(
                    f"{label} b{batch} not measured: the engine has a fixed batch of {backend.max_batch}"
                )
                continue
            config = time_backend(backend, images, batch, warmup, min_duration_s)
            config["accuracy"] = accuracy
            config["backend"] = name
            config["precision"] = manifest.precision
            config["artifact"] = str(artifact)
            result["configurations"].append(config)
    finally:
        backend.close()


def precision_comparisons(configurations: list[dict], labels: list[str]) -> list[dict]:
    """For each non-first artifact: throughput ratio against the first artifact on the same
    backend and batch, beside its verdict agreement with the reference."""
    first = labels[0]
    base = {c["name"][len(first) :]: c for c in configurations if c["name"].startswith(first)}
    rows = []
    for label in labels[1:]:
        for config in configurations:
            if not config["name"].startswith(label) or config["name"][len(label) :] not in base:
                continue
            ref = base[config["name"][len(label) :]]
            ratio = config["throughput_per_s"] / ref["throughput_per_s"] if ref["throughput_per_s"] else float("nan")
            agree = config["accuracy"]["verdict_agreement"]
            rows.append(
                {
                    "name": f"{config['name']} / {ref['name']}",
                    "metric": "throughput ratio",
                    "ratio": ratio,
                    "goal": f"verdicts agree {agree:.1%}"
                    if agree is not None
                    else "agreement not reported (one class only)",
                    "goal_met": None,
                    "verdict_agreement": agree,
                }
            )
    return rows


def add_anomalib(
    result: dict,
    manifest: Manifest,
    split: Path | None,
    images: np.ndarray,
    reference: tuple[tuple, str],
    batches: list[int],
    warmup: int,
    min_duration_s: float,
    options: AnomalibOptions | None,
    eval_limit: int,
    artifact: Path | None = None,
) -> None:
    """Measure anomalib's PatchCore on the same images and merge it into `result`;
    anything that stops it becomes a note (the engine figures stand on their own)."""
    from benchmarks.baselines import anomalib_baseline as ab

    if split is None:
        result["notes"].append(
            "anomalib not measured: it needs --split (OK training images to fit PatchCore on, labelled held-out images "
            "for AUROC)"
        )
        return
    options = options or ab.AnomalibOptions()
    status = ab.availability(options.python)
    if not status.available:
        result["notes"].append(status.reason)
        return
    from eiad.split import load_split
    from export.vision.parity import load_images

    labels = evaluation_labels(split, eval_limit)
    masks = evaluation_masks(manifest, split, eval_limit)
    train_paths = [e.image for e in load_split(Path(split)).train if e.label == "OK"][: options.train_images]
    try:
        train = load_images(
            train_paths, manifest.input.height, manifest.input.width, listed_in=f"{split} (anomalib's training images)"
        )
        configs, notes = ab.measure(
            train,
            images,
            labels,
            batches=batches,
            warmup=warmup,
            min_duration_s=min_duration_s,
            options=options,
            masks=masks,
        )
    except ab.BaselineUnavailable as why:
        log.warning("%s", why)
        result["notes"].append(str(why))
        return
    (ref_verdicts, ref_scores), ref_name = reference
    ours = [c for c in result["configurations"] if c.get("group") == "engine"]
    result["configurations"] += configs
    ours_pixel = ab.pixel_auroc(engine_maps(artifact, images), masks) if artifact is not None else None
    result["comparisons"] += ab.comparisons(
        ours, configs, ab.image_auroc(ref_scores, labels), f"our engine, {ref_name}", ours_pixel
    )
    result["notes"] += notes
    result["settings"]["anomalib"] = {
        "train_images": len(train_paths),
        "coreset_sampling_ratio": options.coreset_sampling_ratio,
        "backbone": options.backbone,
        "versions": configs[0]["versions"],
        "fit_s": configs[0]["fit_s"],
        "worker_peak_rss_mb": configs[0].get("peak_rss_mb"),
    }
