"""Measure what an operator wants to know about a defect, from its mask and the image.

One function for every place that describes a defect: the DDQA description task (on the
ground-truth mask), the edge explainer's prompt and the consistency checker (on the mask
the PLC received). Torch-free (numpy + OpenCV); pure functions, thread-safe.

Rules (docs/ddqa.md, "Defect description"):
- defect pixels: mask > 0 (bool) or > 127 (uint8 grey);
- regions: 8-connected components; facts about shape are of the largest region, area and
  location of all defect pixels together;
- location: "centre" when the defect pixels' centroid lies in the middle third of the
  image in both directions, else the quadrant holding the most defect area (the DDQA
  rough-localization rule; middle lines count half to each side);
- near the edge: a defect pixel within EDGE_MARGIN of the image's shorter side from the
  image border;
- size: area as a share of the image, bucketed at SIZE_BUCKETS;
- shape: the largest region's minimum-area rectangle; "elongated" when its long side is
  at least ELONGATED_ASPECT times its short side, else "compact";
- appearance: mean grey level inside the mask minus the mean over a ring around it
  (RING_FRACTION of the shorter side wide, at least 2 px); "darker" / "brighter" beyond
  CONTRAST_LEVELS grey levels, else "similar". Unknown (None) without an image or when
  the ring is empty (the defect covers the image).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
LOCATIONS = (*QUADRANTS, "centre")
EDGE_MARGIN = 0.05
# (upper bound as a share of the image, name); the last bucket has no upper bound.
SIZE_BUCKETS = ((0.001, "tiny"), (0.01, "small"), (0.05, "medium"), (float("inf"), "large"))
SIZES = tuple(name for _, name in SIZE_BUCKETS)
ELONGATED_ASPECT = 3.0
SHAPES = ("elongated", "compact")
RING_FRACTION = 0.03
CONTRAST_LEVELS = 6.0
APPEARANCES = ("darker", "brighter", "similar")


@dataclass(frozen=True)
class DefectFacts:
    """What one mask says about a defect (all defect pixels of the image together)."""

    regions: int
    area_px: int
    area_share: float  # of the image, 0..1
    size: str  # one of SIZES
    location: str  # one of LOCATIONS
    near_edge: bool
    shape: str  # one of SHAPES (of the largest region)
    aspect: float  # long / short side of the largest region's minimum-area rectangle
    appearance: str | None  # one of APPEARANCES; None without an image
    contrast: float | None  # grey levels, inside minus ring

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def defect_mask(mask: np.ndarray) -> np.ndarray:
    """Boolean (H, W) defect pixels of a bool mask or an 8-bit grey/colour mask (> 127)."""
    if mask.dtype == bool:
        return mask if mask.ndim == 2 else mask[..., 0]
    if mask.ndim == 3:
        mask = cv2.cvtColor(mask, cv2.COLOR_BGR2GRAY)
    return mask > 127


def size_bucket(share: float) -> str:
    return next(name for bound, name in SIZE_BUCKETS if share < bound)


def _location(defect: np.ndarray) -> str:
    h, w = defect.shape
    ys, xs = np.nonzero(defect)
    cx, cy = (xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h
    if abs(cx - 0.5) < 1 / 6 and abs(cy - 0.5) < 1 / 6:
        return "centre"
    # Quadrant with the most defect area; a pixel on an odd middle line counts half to each side.
    weights_y = np.where(ys * 2 + 1 < h, 0.0, np.where(ys * 2 + 1 > h, 1.0, 0.5))
    weights_x = np.where(xs * 2 + 1 < w, 0.0, np.where(xs * 2 + 1 > w, 1.0, 0.5))
    areas = [
        float(((1 - weights_y) * (1 - weights_x)).sum()),
        float(((1 - weights_y) * weights_x).sum()),
        float((weights_y * (1 - weights_x)).sum()),
        float((weights_y * weights_x).sum()),
    ]
    return QUADRANTS[areas.index(max(areas))]


def _near_edge(defect: np.ndarray) -> bool:
    h, w = defect.shape
    m = max(1, round(EDGE_MARGIN * min(h, w)))
    return bool(defect[:m].any() or defect[-m:].any() or defect[:, :m].any() or defect[:, -m:].any())


def _largest_region_aspect(defect: np.ndarray) -> tuple[int, float]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(defect.astype(np.uint8), connectivity=8)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    ys, xs = np.nonzero(labels == largest)
    points = np.stack([xs, ys], axis=1).astype(np.float32)
    # Pixel centres span (n - 1); +1 gives the pixels' own extent, so a 1-px line is 1 wide.
    (_, _), (a, b), _ = cv2.minAreaRect(points)
    long_side, short_side = max(a, b) + 1.0, min(a, b) + 1.0
    return count - 1, float(long_side / short_side)


def _appearance(defect: np.ndarray, image: np.ndarray) -> tuple[str | None, float | None]:
    h, w = defect.shape
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if grey.shape != (h, w):
        grey = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA)
    width = max(2, round(RING_FRACTION * min(h, w)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    ring = cv2.dilate(defect.astype(np.uint8), kernel).astype(bool) & ~defect
    if not ring.any():
        return None, None
    contrast = float(grey[defect].mean() - grey[ring].mean())
    if contrast <= -CONTRAST_LEVELS:
        return "darker", contrast
    if contrast >= CONTRAST_LEVELS:
        return "brighter", contrast
    return "similar", contrast


def measure_defect(mask: np.ndarray, image: np.ndarray | None = None) -> DefectFacts | None:
    """Facts of a defect mask (and the image it belongs to, for its appearance); None when
    the mask holds no defect pixel. The image may have another size: it is resized to the mask's."""
    defect = defect_mask(np.asarray(mask))
    area = int(defect.sum())
    if area == 0:
        return None
    share = area / defect.size
    regions, aspect = _largest_region_aspect(defect)
    appearance, contrast = _appearance(defect, np.asarray(image)) if image is not None else (None, None)
    return DefectFacts(
        regions=regions,
        area_px=area,
        area_share=share,
        size=size_bucket(share),
        location=_location(defect),
        near_edge=_near_edge(defect),
        shape="elongated" if aspect >= ELONGATED_ASPECT else "compact",
        aspect=aspect,
        appearance=appearance,
        contrast=contrast,
    )
