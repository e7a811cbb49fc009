"""Defect renderers. Each edits the surface layer (grey levels, before light and noise).

A renderer takes the generator and a `Surface` and returns (edited layer, footprint):
the caller keeps the edited pixels only inside the footprint, so nothing outside it can
change. Sizes scale with the part, so the same defect looks alike at any image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from train.data.synth.textures import smooth_noise


@dataclass(frozen=True)
class Surface:
    """The defect-free surface layer and where the part is (float32, image size)."""

    layer: np.ndarray  # (h, w, 3) part over belt, grey levels
    belt: np.ndarray  # (h, w, 3) the belt under the part, grey levels
    alpha: np.ndarray  # (h, w) part coverage 0..1
    corners: np.ndarray  # (4, 2) part corners x, y

    @property
    def scale_px(self) -> float:
        """Length of the part's shorter side in pixels."""
        sides = np.linalg.norm(np.roll(self.corners, -1, axis=0) - self.corners, axis=1)
        return float(sides.min())

    def interior(self, margin_px: int) -> np.ndarray:
        """Pixels fully on the part, at least margin_px from its edge."""
        inside = (self.alpha >= 0.999).astype(np.uint8)
        if margin_px > 0:
            inside = cv2.erode(inside, np.ones((2 * margin_px + 1,) * 2, np.uint8))
        return inside.astype(bool)


def _pick(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(region)
    if len(xs) == 0:
        raise RuntimeError("no room on the part for a defect; use a larger image size")
    i = int(rng.integers(len(xs)))
    return np.array([xs[i], ys[i]], float)


def _blend(layer: np.ndarray, colour, amount: np.ndarray) -> np.ndarray:
    return layer * (1 - amount[..., None]) + np.asarray(colour, np.float32) * amount[..., None]


def _canvas(s: Surface) -> np.ndarray:
    return np.zeros(s.alpha.shape, np.uint8)


def scratch(rng: np.random.Generator, s: Surface):
    """1-2 thin, slightly curved lines; bright (specular) or dark."""
    canvas = _canvas(s)
    width = max(1, int(round(s.scale_px / 110 * rng.uniform(0.7, 1.7))))
    start = _pick(rng, s.interior(4))
    for _ in range(int(rng.choice([1, 1, 2]))):
        length = s.scale_px * rng.uniform(0.25, 0.6)
        angle = rng.uniform(0, np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        bend = np.array([-direction[1], direction[0]]) * length * rng.uniform(-0.15, 0.15)
        t = np.linspace(0, 1, 32)[:, None]
        points = start + direction * length * t + bend * 4 * t * (1 - t)
        cv2.polylines(canvas, [np.round(points).astype(np.int32)], False, 255, width, cv2.LINE_AA)
        start = start + np.array([-direction[1], direction[0]]) * rng.uniform(3, 8)
    amount = canvas.astype(np.float32) / 255 * rng.uniform(0.7, 0.95)
    colour = np.full(3, 250.0) if rng.random() < 0.6 else s.layer * 0.2
    edited = _blend(s.layer, colour, amount)
    return edited, (canvas > 60) & s.interior(1)


def _walk(rng, start, heading, steps, step_px):
    points = [start]
    for _ in range(steps):
        heading += rng.normal(0, 0.25)
        points.append(points[-1] + step_px * np.array([np.cos(heading), np.sin(heading)]))
    return np.array(points)


def crack(rng: np.random.Generator, s: Surface):
    """A dark jagged fissure with 1-3 side branches, thicker at its origin."""
    canvas = _canvas(s)
    step = max(1.5, s.scale_px / 90)
    steps = int(s.scale_px * rng.uniform(0.3, 0.65) / step)
    main = _walk(rng, _pick(rng, s.interior(6)), rng.uniform(0, 2 * np.pi), steps, step)
    width = max(1, int(round(s.scale_px / 90 * rng.uniform(0.8, 1.4))))
    for i in range(len(main) - 1):
        w = width + (1 if i < len(main) // 3 else 0)
        a, b = np.round(main[i]).astype(int), np.round(main[i + 1]).astype(int)
        cv2.line(canvas, tuple(map(int, a)), tuple(map(int, b)), 255, w, cv2.LINE_AA)
    for _ in range(int(rng.integers(1, 4))):
        origin = main[int(rng.integers(len(main) // 4, len(main)))]
        branch = _walk(rng, origin, rng.uniform(0, 2 * np.pi), max(3, steps // 4), step)
        cv2.polylines(canvas, [np.round(branch).astype(np.int32)], False, 255, 1, cv2.LINE_AA)
    amount = canvas.astype(np.float32) / 255 * rng.uniform(0.6, 0.85)
    edited = _blend(s.layer, s.layer * 0.15, amount)
    return edited, (canvas > 60) & s.interior(1)


def pitting(rng: np.random.Generator, s: Surface):
    """Many small dark pits clustered around a spot, each with its own depth."""
    canvas = _canvas(s)
    centre = _pick(rng, s.interior(8))
    spread = s.scale_px * rng.uniform(0.04, 0.12)
    unit = s.scale_px / 160
    for _ in range(int(rng.integers(15, 60))):
        x, y = centre + rng.normal(0, spread, 2)
        radius = max(1, int(round(unit * rng.uniform(0.6, 2.2))))
        depth = int(rng.uniform(150, 255))
        cv2.circle(canvas, (int(round(x)), int(round(y))), radius, depth, -1, cv2.LINE_AA)
    amount = canvas.astype(np.float32) / 255 * rng.uniform(0.7, 0.9)
    edited = _blend(s.layer, s.layer * 0.12, amount)
    return edited, (canvas > 50) & s.interior(1)


_STAIN_COLOURS = np.array([[40, 32, 22], [150, 75, 30], [95, 85, 60], [25, 25, 28], [210, 205, 190]], np.float32)


def stain(rng: np.random.Generator, s: Surface):
    """An irregular translucent blot (oil, rust, dirt, coolant residue)."""
    h, w = s.alpha.shape
    centre = _pick(rng, s.interior(6))
    rx, ry = s.scale_px * rng.uniform(0.05, 0.18, 2)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - centre[0], yy - centre[1]
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
    field = 1 - (u**2 + v**2) + 0.45 * smooth_noise(rng, h, w, max(2.0, min(rx, ry) / 2.5))
    footprint = (field > 0) & s.interior(1)
    local = s.layer[footprint].mean(axis=0) if footprint.any() else np.full(3, 128.0)
    # Prefer a colour that stands out from this surface, but not always the same one.
    contrast = np.abs(_STAIN_COLOURS - local).sum(axis=1)
    options = np.argsort(contrast)[-3:]
    colour = _STAIN_COLOURS[options[int(rng.integers(len(options)))]]
    opacity = rng.uniform(0.45, 0.8)
    amount = opacity * (0.4 + 0.6 * np.clip(field * 2.5, 0, 1))
    amount *= 1 + 0.15 * smooth_noise(rng, h, w, 1.5)
    return _blend(s.layer, colour, np.clip(amount, 0, 1)), footprint


def _blob_polygon(rng, centre, radius, jag, n=48):
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    wobble = np.convolve(np.tile(rng.normal(0, 1, n), 3), np.ones(5) / 5, "same")[n : 2 * n]
    r = radius * (1 + jag * wobble)
    pts = centre + np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    return np.round(pts).astype(np.int32)


def hole(rng: np.random.Generator, s: Surface):
    """A through-hole: the shadowed belt shows inside, the bore wall darkens one side."""
    radius = max(3.0, s.scale_px * rng.uniform(0.035, 0.1))
    centre = _pick(rng, s.interior(int(radius * 1.3) + 3))
    disc = _canvas(s)
    cv2.fillPoly(disc, [_blob_polygon(rng, centre, radius, rng.uniform(0.0, 0.25))], 255)
    rim_px = max(1, int(round(radius * 0.25)))
    ring = cv2.dilate(disc, np.ones((2 * rim_px + 1,) * 2, np.uint8)) & ~disc
    yy, xx = np.mgrid[0 : disc.shape[0], 0 : disc.shape[1]]
    side = rng.uniform(0, 2 * np.pi)
    facing = ((xx - centre[0]) * np.cos(side) + (yy - centre[1]) * np.sin(side)) > 0
    edited = s.layer.copy()
    inside, ring = disc > 0, ring > 0
    edited[inside] = s.belt[inside] * rng.uniform(0.25, 0.55)
    edited[ring & facing] = s.layer[ring & facing] * 0.45
    edited[ring & ~facing] = np.minimum(s.layer[ring & ~facing] * 1.3 + 10, 255)
    return edited, (inside | ring) & (s.alpha > 0)


def missing_material(rng: np.random.Generator, s: Surface):
    """A chipped edge or broken corner: material gone, belt visible, bright fracture."""
    i = int(rng.integers(4))
    a, b = s.corners[i], s.corners[(i + 1) % 4]
    at = a if rng.random() < 0.5 else a + (b - a) * rng.uniform(0.2, 0.8)
    radius = s.scale_px * rng.uniform(0.08, 0.2)
    chip = _canvas(s)
    cv2.fillPoly(chip, [_blob_polygon(rng, at, radius, rng.uniform(0.1, 0.3), n=24)], 255)
    gone = (chip > 0) & (s.alpha > 0)
    edge = cv2.dilate(chip, np.ones((3, 3), np.uint8)) > 0
    fracture = edge & ~gone & (s.alpha > 0.5)
    edited = s.layer.copy()
    edited[gone] = s.belt[gone]
    edited[fracture] = np.minimum(s.layer[fracture] * 1.35 + 15, 255)
    return edited, gone | fracture


DEFECTS = {
    "scratch": scratch,
    "crack": crack,
    "pitting": pitting,
    "stain": stain,
    "hole": hole,
    "missing_material": missing_material,
}
