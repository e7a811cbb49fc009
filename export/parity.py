"""Parity of the exported vision engine with the PyTorch model on real images.

Tolerances (the export fails past them, see docs/export.md):
    anomaly map, image score, class probabilities: max |onnx - torch| <= 1e-3
    vision features: max |onnx - torch| <= 1e-3 * max(1, max |torch|)
    mask IoU at the calibrated pixel threshold >= 0.99 (mean over images; 1 where both empty)
    verdict agreement at the calibrated image threshold: 100 %
fp32 ONNX Runtime on CPU typically lands near 1e-6 (STACK.md); 1e-3 leaves room for
other CPUs' kernels while still catching a wrong preprocessing or a fixed batch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eiad.errors import ArtifactError, DataError
from eiad.manifest import ANOMALY_MAP, CLASS_PROBS, IMAGE_SCORE, VISION_FEATURES

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class VisionTolerances:
    map_abs: float = 1e-3
    score_abs: float = 1e-3
    probs_abs: float = 1e-3
    features_rel: float = 1e-3
    min_mask_iou: float = 0.99
    min_verdict_agreement: float = 1.0


@dataclass(frozen=True)
class VisionParity:
    images: int
    map_max_abs: float
    score_max_abs: float
    probs_max_abs: float
    features_max_abs: float
    mask_iou_mean: float
    verdict_agreement: float
    image_threshold: float
    pixel_threshold: float
    source: str

    def failures(self, tol: VisionTolerances, features_scale: float = 1.0) -> list[str]:
        checks = [
            (self.map_max_abs <= tol.map_abs, f"anomaly map max abs diff {self.map_max_abs:.2e} > {tol.map_abs:.3g}"),
            (self.score_max_abs <= tol.score_abs, f"image score max abs diff {self.score_max_abs:.2e} > {tol.score_abs:.3g}"),
            (self.probs_max_abs <= tol.probs_abs, f"class probs max abs diff {self.probs_max_abs:.2e} > {tol.probs_abs:.3g}"),
            (
                self.features_max_abs <= tol.features_rel * max(1.0, features_scale),
                f"vision features max abs diff {self.features_max_abs:.2e} > {tol.features_rel:.3g} x {max(1.0, features_scale):.3g}",
            ),
            (self.mask_iou_mean >= tol.min_mask_iou, f"mean mask IoU {self.mask_iou_mean:.4f} < {tol.min_mask_iou}"),
            (
                self.verdict_agreement >= tol.min_verdict_agreement,
                f"verdict agreement {self.verdict_agreement:.2%} < {tol.min_verdict_agreement:.0%}",
            ),
        ]
        return [message for ok, message in checks if not ok]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def compare(torch_out: dict, onnx_out: dict, image_threshold: float, pixel_threshold: float, source: str) -> VisionParity:
    """Compare two output dicts (names from eiad/manifest.py) over the same images."""
    maps_t, maps_o = torch_out[ANOMALY_MAP], onnx_out[ANOMALY_MAP]
    ious = [mask_iou(t >= pixel_threshold, o >= pixel_threshold) for t, o in zip(maps_t, maps_o)]
    verdict_t = torch_out[IMAGE_SCORE] >= image_threshold
    verdict_o = onnx_out[IMAGE_SCORE] >= image_threshold
    return VisionParity(
        images=int(len(maps_t)),
        map_max_abs=float(np.abs(maps_t - maps_o).max()),
        score_max_abs=float(np.abs(torch_out[IMAGE_SCORE] - onnx_out[IMAGE_SCORE]).max()),
        probs_max_abs=float(np.abs(torch_out[CLASS_PROBS] - onnx_out[CLASS_PROBS]).max()),
        features_max_abs=float(np.abs(torch_out[VISION_FEATURES] - onnx_out[VISION_FEATURES]).max()),
        mask_iou_mean=float(np.mean(ious)),
        verdict_agreement=float(np.mean(verdict_t == verdict_o)),
        image_threshold=image_threshold,
        pixel_threshold=pixel_threshold,
        source=source,
    )


def check_vision_parity(
    torch_out: dict, onnx_out: dict, image_threshold: float, pixel_threshold: float, source: str,
    tol: VisionTolerances = VisionTolerances(),
) -> VisionParity:
    """Compare and raise ArtifactError listing every tolerance that was exceeded."""
    report = compare(torch_out, onnx_out, image_threshold, pixel_threshold, source)
    scale = float(np.abs(torch_out[VISION_FEATURES]).max())
    failures = report.failures(tol, features_scale=scale)
    if failures:
        raise ArtifactError(
            f"ONNX parity with PyTorch failed on {report.images} images from {source}: " + "; ".join(failures)
            + ". The exported graph does not reproduce the model: do not deploy it"
        )
    log.info(
        "parity on %d images: map %.1e, score %.1e, IoU %.4f, verdicts %.0f%%",
        report.images, report.map_max_abs, report.score_max_abs, report.mask_iou_mean, 100 * report.verdict_agreement,
    )
    return report


def write_report(path: Path, report, tolerances) -> Path:
    payload = {"result": asdict(report), "tolerances": asdict(tolerances)}
    Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return Path(path)


def image_paths(split: Path | None, images: Path | None, limit: int) -> tuple[list[Path], str]:
    """Parity images: the held-out ('val') split of split.json if given, else a folder/file list."""
    if split is not None:
        from train.data.index import load_split

        entries = load_split(split).val
        paths = [Path(e.image) for e in entries][:limit]
        source = f"held-out split {split}"
    elif images is not None:
        images = Path(images)
        paths = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit] if images.is_dir() else [images]
        source = str(images)
    else:
        raise DataError("parity needs real images: pass --split split.json (held-out images) or --images DIR")
    if not paths:
        raise DataError(f"no images found in {source}: parity needs at least one real image")
    return paths, source


def load_images(paths: list[Path], height: int, width: int, listed_in: str = "") -> np.ndarray:
    """uint8 BGR NHWC at the artifact size, the way the edge feeds the engine (cv2, INTER_AREA).
    `listed_in` names where the paths came from, for the error message."""
    import cv2

    batch = np.empty((len(paths), height, width, 3), np.uint8)
    for i, path in enumerate(paths):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            where = f" (listed in {listed_in})" if listed_in else ""
            raise DataError(f"{path}{where} cannot be read as an image (missing or not an image file)")
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        batch[i] = image
    return batch
