"""A part on the line: belt, placed part, light and sensor noise; clean and defective.

The scene is drawn first from the random generator, then the defect. So the clean and
the defective rendering of one sample share every pixel outside the defect: the
defect edits the surface layer (before light and noise, which act per pixel), and the
mask is exactly the pixels whose final value the defect changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from train.data.synth.defects import DEFECTS, Surface
from train.data.synth.textures import TEXTURES, smooth_noise


@dataclass(frozen=True)
class Scene:
    """Everything of one camera shot except the defect (float32 arrays, image size)."""

    belt: np.ndarray  # (h, w, 3) conveyor belt as seen by the camera, grey levels
    part: np.ndarray  # (h, w, 3) part texture placed in the image
    alpha: np.ndarray  # (h, w) part coverage 0..1 (anti-aliased edges)
    corners: np.ndarray  # (4, 2) part corners x, y in image pixels
    light: np.ndarray  # (h, w) illumination gain: global gain, gradient, vignetting
    noise: np.ndarray  # (h, w, 3) sensor noise, grey levels


@dataclass(frozen=True)
class RenderedPair:
    """One sample: the defect-free and the defective image (uint8 RGB) and the mask."""

    clean: np.ndarray
    image: np.ndarray
    mask: np.ndarray  # uint8 0/255, 255 where the defect changed the image


def _belt(rng: np.random.Generator, size: int) -> np.ndarray:
    grey = rng.uniform(40, 70) + 3.0 * smooth_noise(rng, size, size, 0.8)
    grey += 4.0 * smooth_noise(rng, size, size, size / 10)
    return np.repeat(grey[..., None], 3, axis=2).astype(np.float32)


def _placement(rng: np.random.Generator, size: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Part size (w, h), affine matrix part->image and the image corners."""
    pw, ph = (int(size * rng.uniform(0.55, 0.8)) for _ in range(2))
    angle = np.deg2rad(rng.uniform(-15, 15))
    cos, sin = np.cos(angle), np.sin(angle)
    box_w, box_h = abs(pw * cos) + abs(ph * sin), abs(pw * sin) + abs(ph * cos)
    scale = min(1.0, (size - 6) / max(box_w, box_h))  # keep the whole part in view
    half_x, half_y = box_w * scale / 2 + 3, box_h * scale / 2 + 3
    cx = rng.uniform(half_x, size - half_x)
    cy = rng.uniform(half_y, size - half_y)
    # Nudge towards the centre: a triggered camera sees the part roughly centred.
    cx, cy = (cx + size / 2) / 2, (cy + size / 2) / 2
    rot = np.array([[cos, -sin], [sin, cos]]) * scale
    shift = np.array([cx, cy]) - rot @ np.array([pw / 2, ph / 2])
    matrix = np.hstack([rot, shift[:, None]])
    local = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], float)
    return pw, ph, matrix, local @ rot.T + shift


def _lighting(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) / size) - 0.5
    theta = rng.uniform(0, 2 * np.pi)
    gradient = 1 + rng.uniform(0, 0.3) * (xx * np.cos(theta) + yy * np.sin(theta))
    vignette = 1 - rng.uniform(0, 0.5) * (xx**2 + yy**2) * 2
    return (rng.uniform(0.8, 1.2) * gradient * vignette).astype(np.float32)


def render_scene(rng: np.random.Generator, part: str, size: int) -> Scene:
    """Draw belt, part (texture, position, rotation), light and noise, in that order."""
    belt = _belt(rng, size)
    pw, ph, matrix, corners = _placement(rng, size)
    texture = TEXTURES[part](rng, ph, pw)
    part_img = cv2.warpAffine(texture, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    shape = np.zeros((ph, pw), np.uint8)
    radius = int(min(pw, ph) * rng.uniform(0.0, 0.12))
    cv2.rectangle(shape, (radius, 0), (pw - 1 - radius, ph - 1), 255, -1)
    cv2.rectangle(shape, (0, radius), (pw - 1, ph - 1 - radius), 255, -1)
    for x, y in (
        (radius, radius),
        (pw - 1 - radius, radius),
        (radius, ph - 1 - radius),
        (pw - 1 - radius, ph - 1 - radius),
    ):
        cv2.circle(shape, (x, y), radius, 255, -1)
    alpha = cv2.warpAffine(shape.astype(np.float32) / 255, matrix, (size, size), flags=cv2.INTER_LINEAR)
    # Soft shadow of the part on the belt, cast away from the light.
    shadow = cv2.GaussianBlur(np.roll(alpha, (3, 3), axis=(0, 1)), (0, 0), 4.0)
    belt = belt * (1 - 0.45 * shadow[..., None])
    light = _lighting(rng, size)
    noise = rng.normal(0.0, rng.uniform(0.8, 2.5), (size, size, 3)).astype(np.float32)
    return Scene(belt, part_img, np.clip(alpha, 0, 1), corners, light, noise)


def capture(scene: Scene, surface: np.ndarray) -> np.ndarray:
    """What the camera records of a surface layer: light, noise, 8-bit quantisation."""
    lit = surface * scene.light[..., None] + scene.noise
    return np.clip(np.rint(lit), 0, 255).astype(np.uint8)


def render_pair(rng: np.random.Generator, part: str, defect: str | None, size: int) -> RenderedPair:
    """Render one sample: the clean shot and, from the same draws, the defective one."""
    scene = render_scene(rng, part, size)
    layer = scene.alpha[..., None] * scene.part + (1 - scene.alpha[..., None]) * scene.belt
    clean = capture(scene, layer)
    if defect is None:
        return RenderedPair(clean, clean, np.zeros((size, size), np.uint8))
    for _ in range(8):  # a defect that vanishes in quantisation is drawn again
        surface = Surface(layer, scene.belt, scene.alpha, scene.corners)
        edited, footprint = DEFECTS[defect](rng, surface)
        image = capture(scene, np.where(footprint[..., None], edited, layer))
        changed = np.any(image != clean, axis=2)
        if changed.sum() >= max(6, size * size // 20000):
            return RenderedPair(clean, image, (changed * 255).astype(np.uint8))
    raise RuntimeError(f"defect {defect!r} on {part!r} left no visible change after 8 draws")


# Random streams are keyed by catalogue positions, not by the order of --parts, so a part
# looks the same whichever other parts are generated with it.
DATASET_DOMAIN, STREAM_DOMAIN, STREAM_PLAN_DOMAIN = 0, 1, 2


def sample_rng(seed: int, domain: int, part: str, defect: str | None, index: int) -> np.random.Generator:
    """The generator for one sample: independent of every other sample's draws."""
    from train.data.synth.catalog import DEFECT_TYPES, PART_TYPES

    part_id = list(PART_TYPES).index(part)
    defect_id = 0 if defect is None else 1 + list(DEFECT_TYPES).index(defect)
    return np.random.default_rng([seed, domain, part_id, defect_id, index])
