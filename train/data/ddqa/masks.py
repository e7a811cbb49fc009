"""Read images/masks and measure a defect mask: the facts DDQA answers come from.

Conventions (documented in docs/ddqa.md):
- A mask pixel is defect when its 8-bit grey value is > 127 (JPEG masks carry noise
  around 0 and 255; colour masks are converted to grey first).
- Quadrants split the image at width/2 and height/2. With an odd width (height) the
  middle column (row) lies on the line and counts half to each side, so a mask and its
  mirror image always get mirrored quadrants.
- The box is in pixel-edge coordinates: a defect covering column 0 .. w-1 gives x1 = 0.0
  and x2 = 1.0; x2 = (last defect column + 1) / width. Several disjoint defects give the
  box of their union.
Pure functions; thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DEFECT_THRESHOLD = 127
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")


@dataclass(frozen=True)
class MaskStats:
    width_px: int
    height_px: int
    area_px: int
    quadrant_area_px: tuple[float, float, float, float]  # in QUADRANTS order; halves on odd middles
    box_px: tuple[int, int, int, int]  # x_min, y_min, x_max, y_max of defect pixels, inclusive
    regions: int  # 8-connected defect regions

    @property
    def quadrant(self) -> str:
        """The quadrant holding the most defect area; a tie goes to the first in QUADRANTS order."""
        areas = self.quadrant_area_px
        return QUADRANTS[areas.index(max(areas))]

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Union box of all defect pixels, normalised to 0..1 and rounded to 3 decimals."""
        x_min, y_min, x_max, y_max = self.box_px
        w, h = self.width_px, self.height_px
        return (round(x_min / w, 3), round(y_min / h, 3), round((x_max + 1) / w, 3), round((y_max + 1) / h, 3))


def decode(path: Path | None, grayscale: bool) -> tuple[np.ndarray | None, str]:
    """Decode an image file; (array, "") or (None, why). Reads bytes first so 0-byte files and
    non-ASCII paths are handled the same on every platform."""
    if path is None:
        return None, "no file"
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as error:
        return None, f"cannot read: {error.strerror or error}"
    if data.size == 0:
        return None, "empty"
    flag = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_UNCHANGED
    try:
        array = cv2.imdecode(data, flag)
    except cv2.error as error:  # some codecs raise instead of returning None
        return None, f"OpenCV: {str(error).strip().splitlines()[-1]}"
    if array is None or array.size == 0:
        return None, "not a format OpenCV can decode"
    return array, ""


def defect_pixels(mask: np.ndarray) -> np.ndarray:
    """Boolean defect map of a grey mask (uint8 expected; other depths are scaled to 8 bits)."""
    if mask.ndim == 3:
        mask = cv2.cvtColor(mask, cv2.COLOR_BGR2GRAY)
    if mask.dtype != np.uint8:
        mask = cv2.normalize(mask, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return mask > DEFECT_THRESHOLD


def _thirds(n: int) -> tuple[slice, slice, slice]:
    """(first half, middle line, second half) along one axis; the middle is empty when n is even."""
    half = n // 2
    return slice(0, half), slice(half, n - half), slice(n - half, n)


def quadrant_areas(defect: np.ndarray) -> tuple[float, float, float, float]:
    """Defect area per quadrant (QUADRANTS order), middle lines split half/half."""
    rows, cols = _thirds(defect.shape[0]), _thirds(defect.shape[1])
    blocks = np.array([[int(defect[r, c].sum()) for c in cols] for r in rows], dtype=np.float64)
    weights = np.array([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]])  # first half / second half per third
    area = weights @ blocks @ weights.T  # [top, bottom] x [left, right]
    return (float(area[0, 0]), float(area[0, 1]), float(area[1, 0]), float(area[1, 1]))


def mask_stats(mask: np.ndarray) -> MaskStats | None:
    """Measure a decoded mask; None when it holds no defect pixel."""
    defect = defect_pixels(mask)
    area = int(defect.sum())
    if area == 0:
        return None
    ys = np.flatnonzero(defect.any(axis=1))
    xs = np.flatnonzero(defect.any(axis=0))
    regions, _ = cv2.connectedComponents(defect.astype(np.uint8), connectivity=8)
    return MaskStats(
        width_px=int(defect.shape[1]),
        height_px=int(defect.shape[0]),
        area_px=area,
        quadrant_area_px=quadrant_areas(defect),
        box_px=(int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1])),
        regions=int(regions) - 1,
    )
