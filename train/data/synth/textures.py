"""Part surface textures: procedural industrial surfaces and real photographs.

Every function takes a numpy Generator and a size in pixels and returns a float32 RGB
array (h, w, 3) in grey levels 0..255. Deterministic given the generator state.
"""

from __future__ import annotations

import functools
import logging

import cv2
import numpy as np

log = logging.getLogger(__name__)


def smooth_noise(rng: np.random.Generator, h: int, w: int, sigma_px: float) -> np.ndarray:
    """Gaussian-blurred white noise, rescaled to zero mean and unit std."""
    field = rng.standard_normal((h, w)).astype(np.float32)
    if sigma_px > 0:
        field = cv2.GaussianBlur(field, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)
    return (field - field.mean()) / (field.std() + 1e-6)


def _tint(grey: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Colour a grey image (0..255) by a per-channel factor."""
    return grey[..., None] * rgb[None, None, :].astype(np.float32)


def brushed_metal(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Machined plate: long brushing streaks along a random axis, slow sheen."""
    size = int(np.ceil(np.hypot(h, w))) + 4
    streak = rng.standard_normal((size, size)).astype(np.float32)
    streak = cv2.GaussianBlur(streak, (0, 0), sigmaX=float(rng.uniform(15, 40)), sigmaY=0.6)
    streak /= streak.std() + 1e-6
    angle = float(rng.uniform(-20, 20) + rng.choice([0, 90]))
    rot = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    streak = cv2.warpAffine(streak, rot, (size, size), borderMode=cv2.BORDER_REFLECT)
    y0, x0 = (size - h) // 2, (size - w) // 2
    streak = streak[y0 : y0 + h, x0 : x0 + w]
    base = rng.uniform(140, 185)
    grey = base + 9.0 * streak + 12.0 * smooth_noise(rng, h, w, max(h, w) / 4)
    grey += 2.0 * rng.standard_normal((h, w)).astype(np.float32)
    return _tint(grey, np.array([0.97, 1.0, 1.04]) * rng.uniform(0.97, 1.03, 3))


def woven_fabric(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Plain weave: warp and weft threads crossing over/under, slightly irregular."""
    period = float(rng.uniform(5.0, 9.0))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    wobble = 0.8 * smooth_noise(rng, h, w, 6.0)
    u, v = (xx + wobble) / period, (yy - wobble) / period
    over = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    # Thread cross-section: bright in the middle of each thread, dark in the gaps.
    warp = 0.55 + 0.45 * np.sin(np.pi * (u % 1.0)) ** 0.7
    weft = 0.55 + 0.45 * np.sin(np.pi * (v % 1.0)) ** 0.7
    profile = over * warp * (0.85 + 0.15 * np.sin(np.pi * (v % 1.0)))
    profile += (1 - over) * weft * (0.85 + 0.15 * np.sin(np.pi * (u % 1.0)))
    fibre = 0.06 * smooth_noise(rng, h, w, 0.7) + 0.05 * smooth_noise(rng, h, w, 20.0)
    palette = np.array([[60, 80, 130], [170, 150, 110], [120, 120, 125], [150, 60, 55], [70, 110, 80]])
    colour = palette[rng.integers(len(palette))] * rng.uniform(0.9, 1.15)
    return _tint(np.clip(profile + fibre, 0.1, 1.2), colour / 0.8)


def pcb(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Circuit board: solder mask, copper traces at 0/45/90 degrees, pads, silkscreen."""
    board = np.empty((h, w, 3), np.float32)
    board[:] = np.array([40, 110, 55]) * rng.uniform(0.85, 1.15)
    board *= (1 + 0.05 * smooth_noise(rng, h, w, 12.0))[..., None]
    copper = np.zeros((h, w), np.uint8)
    unit = max(h, w) / 48
    for _ in range(int(rng.integers(10, 18))):
        point = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        points = [point.copy()]
        for _ in range(int(rng.integers(2, 5))):
            direction = [(1, 0), (0, 1), (1, 1), (1, -1), (-1, 0), (0, -1)][rng.integers(6)]
            point = point + np.array(direction) * rng.uniform(4, 16) * unit
            points.append(point.copy())
        pts = np.round(np.array(points)).astype(np.int32)
        cv2.polylines(copper, [pts], False, 255, max(1, int(round(unit * rng.uniform(0.6, 1.2)))))
        for end in (pts[0], pts[-1]):
            cv2.circle(copper, (int(end[0]), int(end[1])), max(2, int(round(unit * 1.6))), 255, -1)
    trace = cv2.GaussianBlur(copper.astype(np.float32) / 255, (0, 0), 0.6)[..., None]
    board = board * (1 - trace) + trace * np.array([190, 150, 70], np.float32)
    silk = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(2, 5))):
        x, y = int(rng.uniform(0, w * 0.8)), int(rng.uniform(0, h * 0.8))
        bw, bh = int(rng.uniform(5, 12) * unit), int(rng.uniform(3, 8) * unit)
        cv2.rectangle(silk, (x, y), (x + bw, y + bh), 255, 1)
    board[silk > 0] = np.array([225, 225, 215], np.float32)
    return board + 3.0 * rng.standard_normal((h, w, 1)).astype(np.float32)


def cast_metal(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Sand-cast surface: dark, grainy at several scales, slightly mottled."""
    grey = rng.uniform(85, 115) + 14.0 * smooth_noise(rng, h, w, 1.0)
    grey += 10.0 * smooth_noise(rng, h, w, 3.0) + 12.0 * smooth_noise(rng, h, w, max(h, w) / 6)
    return _tint(grey, np.array([1.0, 0.98, 0.95]) * rng.uniform(0.96, 1.04, 3))


@functools.lru_cache(maxsize=8)
def _photo(name: str) -> np.ndarray:
    """A real texture photograph shipped with scikit-image (grey, 512x512, no download)."""
    from skimage import data  # heavy; only when a photographed part is asked for

    image = getattr(data, name)()
    log.debug("loaded skimage photograph %s %s", name, image.shape)
    return image.astype(np.float32)


def _photo_crop(rng: np.random.Generator, name: str, h: int, w: int) -> np.ndarray:
    """A random crop of a photograph, flipped/rotated, resized to (h, w)."""
    photo = _photo(name)
    side = photo.shape[0]
    crop = int(rng.uniform(0.45, 0.8) * side)
    y0, x0 = (int(v) for v in rng.integers(0, side - crop, 2))
    patch = np.rot90(photo[y0 : y0 + crop, x0 : x0 + crop], int(rng.integers(4)))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return cv2.resize(np.ascontiguousarray(patch), (w, h), interpolation=cv2.INTER_AREA)


def photo_part(name: str, colour: tuple[float, float, float], contrast: float = 1.0):
    """A texture function for a photographed surface, tinted to a plausible colour."""

    def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        grey = _photo_crop(rng, name, h, w)
        grey = grey.mean() + contrast * (grey - grey.mean())
        tone = np.asarray(colour) * rng.uniform(0.97, 1.03, 3) * rng.uniform(0.85, 1.1)
        return _tint(grey, tone / 128.0)

    return texture


TEXTURES = {
    "brushed_metal": brushed_metal,
    "woven_fabric": woven_fabric,
    "pcb": pcb,
    "cast_metal": cast_metal,
    "brick": photo_part("brick", (160, 105, 85), contrast=1.3),
    "gravel": photo_part("gravel", (140, 138, 130)),
    "grass": photo_part("grass", (95, 125, 75)),
}
