"""The held-out images a benchmark judges on, and how verdicts are compared.

`evaluation_images` / `_labels` / `_masks`: the test split of a split.json (seeded, at
most `limit`), else random frames; `verdicts` applies the edge's own rules to a backend's
outputs; `agreement` compares a candidate's verdicts and scores with a reference's, and
reports agreement only on sets holding both OK and NG parts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.backends import Backend
from eiad.errors import DataError
from eiad.manifest import ANOMALY_MAP, IMAGE_SCORE, Manifest, load_manifest


def evaluation_images(manifest: Manifest, split: Path | None, limit: int = 32, seed: int = 0) -> tuple[np.ndarray, str]:
    """uint8 BGR NHWC at the artifact size, and where they came from."""
    spec = manifest.input
    if split is not None:
        from eiad.split import load_split
        from export.vision.parity import load_images

        entries = load_split(Path(split)).test[:limit]
        if not entries:
            raise DataError(f"{split} has no test images to check accuracy on")
        images = load_images([e.image for e in entries], spec.height, spec.width, listed_in=str(split))
        return images, f"{len(entries)} test images of {split}"
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (limit, spec.height, spec.width, 3), dtype=np.uint8)
    return images, f"{limit} random frames (no --split given: agreement on noise, not on parts)"


def evaluation_labels(split: Path | None, limit: int = 32) -> list[str]:
    """ "OK"/"NG" of the images `evaluation_images` returns for a split (empty without one)."""
    if split is None:
        return []
    from eiad.split import load_split

    return [entry.label for entry in load_split(Path(split)).test[:limit]]


def evaluation_masks(manifest: Manifest, split: Path | None, limit: int = 32) -> np.ndarray | None:
    """(N, H, W) bool defect masks of the images `evaluation_images` returns (good parts: all
    False), at the artifact size (nearest); None without a split."""
    if split is None:
        return None
    import cv2

    from eiad.split import load_split

    h, w = manifest.input.height, manifest.input.width
    masks = np.zeros((0, h, w), bool)
    rows = []
    for entry in load_split(Path(split)).test[:limit]:
        mask = cv2.imread(entry.mask, cv2.IMREAD_GRAYSCALE) if entry.mask else None
        rows.append(
            np.zeros((h, w), bool) if mask is None else cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST) > 127
        )
    return np.stack(rows) if rows else masks


def engine_maps(artifact: Path, images: np.ndarray, step: int = 8) -> np.ndarray:
    """(N, H, W) anomaly maps of the artifact's graph on ONNX Runtime CPU (the reference runtime)."""
    from export.vision.exporter import cpu_session

    onnx_rel = next(k for k, e in load_manifest(artifact).files.items() if e.role == "vision_onnx")
    session = cpu_session(Path(artifact) / onnx_rel)
    maps = [session.run([ANOMALY_MAP], {"image": images[i : i + step]})[0][:, 0] for i in range(0, len(images), step)]
    return np.concatenate(maps)


def verdicts(backend: Backend, images: np.ndarray, manifest: Manifest) -> tuple[list[str], np.ndarray]:
    """Verdict (edge rules: thresholds, min area) and image score per image."""
    from edge.verdict import ThresholdOverrides, decide_outputs

    step = backend.max_batch or 8
    out_verdicts, scores = [], []
    for start in range(0, len(images), step):
        chunk = images[start : start + step]
        n = len(chunk)
        if backend.max_batch and n < backend.max_batch:
            chunk = np.concatenate([chunk, np.zeros((backend.max_batch - n, *chunk.shape[1:]), np.uint8)])
        outputs = backend.run(chunk)
        for row in range(n):
            decision = decide_outputs({k: v[row] for k, v in outputs.items()}, manifest, ThresholdOverrides())
            out_verdicts.append(decision.verdict)
            scores.append(float(np.asarray(outputs[IMAGE_SCORE][row]).reshape(())))
    return out_verdicts, np.asarray(scores)


def agreement(
    reference: tuple[list[str], np.ndarray], candidate: tuple[list[str], np.ndarray], reference_name: str
) -> dict:
    ref_v, ref_s = reference
    cand_v, cand_s = candidate
    same = sum(a == b for a, b in zip(ref_v, cand_v))
    # Agreement on a set the reference judges all OK (or all NG) says nothing about the
    # defects: reported only when the reference verdicts hold both.
    both = {"OK", "NG"} <= set(ref_v)
    return {
        "reference": reference_name,
        "images": len(ref_v),
        "verdict_agreement": same / len(ref_v) if both else None,
        "agreement_note": None
        if both
        else f"not reported: the reference ({reference_name}) judged every image "
        f"{sorted(set(ref_v)) or 'nothing'}; agreement needs both OK and NG parts",
        "disagreements": len(ref_v) - same,
        "max_abs_score_diff": float(np.max(np.abs(ref_s - cand_s))) if len(ref_s) else float("nan"),
        "ng_fraction": sum(v == "NG" for v in cand_v) / len(cand_v) if cand_v else float("nan"),
    }
