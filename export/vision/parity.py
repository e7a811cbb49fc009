"""Parity of the exported vision engine with the PyTorch model on real images.

Tolerances (the export fails past them, see docs/export.md):
    anomaly map, image score, class probabilities: max |onnx - torch| <= 1e-3
    vision features: max |onnx - torch| <= 1e-3 * max(1, max |torch|)
    mask IoU at the calibrated pixel threshold >= 0.99 (mean over images; 1 where both empty)
    verdict agreement at the calibrated image threshold: 100 %
fp32 ONNX Runtime on CPU typically lands near 1e-6; 1e-3 leaves room for other CPUs'
kernels while still catching a wrong preprocessing or a fixed batch.

The float-noise band: two graphs that agree to 1e-6 can still disagree on a part whose
score lies 1e-7 from the threshold, on one CPU and not on another. So a verdict
disagreement counts only where both scores lie outside a band around the image
threshold as wide as the score tolerance (`verdict_band`, default `score_abs`); a pixel
only where both map values lie outside `mask_band` (default `map_abs`) of the pixel
threshold. Flips inside the band are reported (count and the widest margin seen) but
never fail the gate: a real bug moves scores by far more than the band and fails the
score and map tolerances anyway.
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
    verdict_band: float | None = None  # None: score_abs
    mask_band: float | None = None  # None: map_abs

    def bands(self) -> tuple[float, float]:
        """(verdict band, mask band) around the image and pixel thresholds."""
        return (
            self.score_abs if self.verdict_band is None else self.verdict_band,
            self.map_abs if self.mask_band is None else self.mask_band,
        )


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
    verdict_band: float = 0.0
    verdict_flips_in_band: int = 0  # reported, not counted against the gate
    verdict_flip_margin: float = 0.0  # widest |score - threshold| among those flips
    mask_band: float = 0.0
    mask_flips_in_band: int = 0  # pixels
    mask_flip_margin: float = 0.0

    def failures(self, tol: VisionTolerances, features_scale: float = 1.0) -> list[str]:
        checks = [
            (self.map_max_abs <= tol.map_abs, f"anomaly map max abs diff {self.map_max_abs:.2e} > {tol.map_abs:.3g}"),
            (
                self.score_max_abs <= tol.score_abs,
                f"image score max abs diff {self.score_max_abs:.2e} > {tol.score_abs:.3g}",
            ),
            (
                self.probs_max_abs <= tol.probs_abs,
                f"class probs max abs diff {self.probs_max_abs:.2e} > {tol.probs_abs:.3g}",
            ),
            (
                self.features_max_abs <= tol.features_rel * max(1.0, features_scale),
                f"vision features max abs diff {self.features_max_abs:.2e} > {tol.features_rel:.3g} x "
                f"{max(1.0, features_scale):.3g}",
            ),
            (self.mask_iou_mean >= tol.min_mask_iou, f"mean mask IoU {self.mask_iou_mean:.4f} < {tol.min_mask_iou}"),
            (
                self.verdict_agreement >= tol.min_verdict_agreement,
                f"verdict agreement {self.verdict_agreement:.2%} < {tol.min_verdict_agreement:.0%} "
                f"(outside the +/-{self.verdict_band:.2g} band around the threshold {self.image_threshold:.4f})",
            ),
        ]
        return [message for ok, message in checks if not ok]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def flips(reference: np.ndarray, candidate: np.ndarray, threshold: float, band: float) -> tuple[np.ndarray, np.ndarray]:
    """(counted, in_band) boolean arrays: where `>= threshold` differs between the two, split by
    whether both values lie outside `band` of the threshold (counted) or not (float noise)."""
    differ = (reference >= threshold) != (candidate >= threshold)
    near = (np.abs(reference - threshold) <= band) | (np.abs(candidate - threshold) <= band)
    return differ & ~near, differ & near


def _margin(reference: np.ndarray, candidate: np.ndarray, threshold: float, where: np.ndarray) -> float:
    if not where.any():
        return 0.0
    return float(np.maximum(np.abs(reference[where] - threshold), np.abs(candidate[where] - threshold)).max())


def compare(
    torch_out: dict,
    onnx_out: dict,
    image_threshold: float,
    pixel_threshold: float,
    source: str,
    tol: VisionTolerances = VisionTolerances(),
) -> VisionParity:
    """Compare two output dicts (names from eiad/manifest.py) over the same images; `tol` gives the bands."""
    verdict_band, mask_band = tol.bands()
    maps_t, maps_o = torch_out[ANOMALY_MAP], onnx_out[ANOMALY_MAP]
    ious, pixel_noise, pixel_margin = [], 0, 0.0
    for t, o in zip(maps_t, maps_o):
        counted, noise = flips(t, o, pixel_threshold, mask_band)
        mask_t = t >= pixel_threshold
        # In-band pixels take the reference's side: float noise is not a mask difference.
        mask_o = np.where(noise, mask_t, o >= pixel_threshold)
        ious.append(mask_iou(mask_t, mask_o))
        pixel_noise += int(noise.sum())
        pixel_margin = max(pixel_margin, _margin(t, o, pixel_threshold, noise))
    score_t, score_o = torch_out[IMAGE_SCORE], onnx_out[IMAGE_SCORE]
    counted, noise = flips(score_t, score_o, image_threshold, verdict_band)
    return VisionParity(
        images=int(len(maps_t)),
        map_max_abs=float(np.abs(maps_t - maps_o).max()),
        score_max_abs=float(np.abs(score_t - score_o).max()),
        probs_max_abs=float(np.abs(torch_out[CLASS_PROBS] - onnx_out[CLASS_PROBS]).max()),
        features_max_abs=float(np.abs(torch_out[VISION_FEATURES] - onnx_out[VISION_FEATURES]).max()),
        mask_iou_mean=float(np.mean(ious)),
        verdict_agreement=float(1.0 - np.mean(counted)),
        image_threshold=image_threshold,
        pixel_threshold=pixel_threshold,
        source=source,
        verdict_band=float(verdict_band),
        verdict_flips_in_band=int(noise.sum()),
        verdict_flip_margin=_margin(score_t, score_o, image_threshold, noise),
        mask_band=float(mask_band),
        mask_flips_in_band=pixel_noise,
        mask_flip_margin=pixel_margin,
    )


def check_vision_parity(
    torch_out: dict,
    onnx_out: dict,
    image_threshold: float,
    pixel_threshold: float,
    source: str,
    tol: VisionTolerances = VisionTolerances(),
) -> VisionParity:
    """Compare and raise ArtifactError listing every tolerance that was exceeded."""
    report = compare(torch_out, onnx_out, image_threshold, pixel_threshold, source, tol)
    scale = float(np.abs(torch_out[VISION_FEATURES]).max())
    failures = report.failures(tol, features_scale=scale)
    if failures:
        raise ArtifactError(
            f"ONNX parity with PyTorch failed on {report.images} images from {source}: "
            + "; ".join(failures)
            + ". The exported graph does not reproduce the model: do not deploy it"
        )
    log.info(
        "parity on %d images: map %.1e, score %.1e, IoU %.4f, verdicts %.0f%%; within the float-noise band: "
        "%d verdict flip(s), %d pixel flip(s)",
        report.images,
        report.map_max_abs,
        report.score_max_abs,
        report.mask_iou_mean,
        100 * report.verdict_agreement,
        report.verdict_flips_in_band,
        report.mask_flips_in_band,
    )
    return report


def write_report(path: Path, report, tolerances) -> Path:
    payload = {"result": asdict(report), "tolerances": asdict(tolerances)}
    Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return Path(path)


def image_paths(split: Path | None, images: Path | None, limit: int) -> tuple[list[Path], str]:
    """Parity images: the test part of split.json if given, else a folder/file list."""
    if split is not None:
        from eiad.split import load_split

        entries = load_split(split).test
        paths = [Path(e.image) for e in entries][:limit]
        source = f"test split of {split}"
    elif images is not None:
        images = Path(images)
        paths = (
            sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
            if images.is_dir()
            else [images]
        )
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
