"""Pseudo-defects drawn on good images: training signal for a line with no defect samples.

A localization module learns "what a defect looks like" from defect samples. On day one
a line has none, so `eiad train --normal-only` teaches it "what does not belong here"
instead, from good images alone, the way CutPaste (Li et al., CVPR 2021) and DRAEM
(Zavrtanik et al., ICCV 2021) do: a region of a good image is replaced by something
from elsewhere, and the module learns to find it. Three generic kinds, none modelled on
any particular defect type (so a figure on real defects is not a figure on our own
drawings):

- scar:   a thin strip cut from elsewhere in the same image, rotated, pasted;
- patch:  a blob-shaped region (thresholded smooth noise) filled with another part of
          the same image, shifted and rotated;
- foreign: a blob-shaped region blended with a foreign texture (another good image of
          the training set), at a random opacity;
- stroke: a thin, slightly curved line of one flat colour, at a random opacity: a mark
          that is no texture of the part at all (a fibre, a hair, a pen mark, a scratch).

The first three also get a random gain, so the pasted region may be darker or brighter.
The stroke came last, after a normal-only model trained on the first three missed most
thin scratches on the demo line's test split (image AUROC 0.63 on scratches): those
three change texture, and a 1-2 px line of a texture from the same part is barely an
edit at all. So the figure on thin defects is not independent of this choice; it is
said wherever it is reported. The mask
is exactly the pixels the edit changed (more than 2 grey levels), like the synthetic
line's. Pure numpy/OpenCV; deterministic for a given generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

KINDS = ("scar", "patch", "foreign", "stroke")


@dataclass(frozen=True)
class PseudoDefects:
    """How often and how big (fractions of the image side)."""

    probability: float = 0.5  # share of training items that get a pseudo-defect
    kinds: tuple[str, ...] = KINDS  # drawn equally often
    min_size: float = 0.04
    max_size: float = 0.25


def _blob(rng: np.random.Generator, h: int, w: int, size_px: float) -> np.ndarray:
    """A boolean blob about `size_px` across at a random place: thresholded smooth noise inside an ellipse."""
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    ry, rx = size_px / 2 * rng.uniform(0.5, 1.0, 2)
    u = ((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)) / rx
    v = (-(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)) / ry
    noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), max(1.0, size_px / 8))
    noise /= noise.std() + 1e-6
    return (1 - (u**2 + v**2) + 0.35 * noise) > 0


def _shifted(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """The image rotated about a random centre and shifted: content from elsewhere in the same shot."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((rng.uniform(0, w), rng.uniform(0, h)), rng.uniform(0, 360), 1.0)
    matrix[:, 2] += rng.uniform(-0.4, 0.4, 2) * (w, h)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _scar(rng: np.random.Generator, h: int, w: int, size_px: float) -> np.ndarray:
    canvas = np.zeros((h, w), np.uint8)
    centre = np.array([rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h])
    angle = rng.uniform(0, np.pi)
    half = np.array([np.cos(angle), np.sin(angle)]) * size_px
    width = int(rng.integers(1, max(2, int(size_px / 8)) + 1))
    cv2.line(canvas, tuple(int(v) for v in centre - half), tuple(int(v) for v in centre + half), 255, width)
    return canvas > 0


def _stroke(rng: np.random.Generator, h: int, w: int, size_px: float) -> np.ndarray:
    """A 1-3 px polyline about `size_px` long, bent by up to a fifth of its length (anti-aliased
    coverage in 0..1)."""
    canvas = np.zeros((h, w), np.uint8)
    start = np.array([rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h])
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    bend = np.array([-direction[1], direction[0]]) * size_px * rng.uniform(-0.2, 0.2)
    t = np.linspace(0, 1, 24)[:, None]
    points = start + direction * size_px * t + bend * 4 * t * (1 - t)
    width = int(rng.integers(1, 4))
    cv2.polylines(canvas, [np.round(points).astype(np.int32)], False, 255, width, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255


def draw(
    rng: np.random.Generator, image: np.ndarray, foreign: np.ndarray | None, spec: PseudoDefects = PseudoDefects()
) -> tuple[np.ndarray, np.ndarray]:
    """(edited uint8 image, uint8 {0,1} mask) with one pseudo-defect on a uint8 BGR image.

    `foreign` is another good image of the same size (None: the 'foreign' kind falls back to 'patch').
    """
    h, w = image.shape[:2]
    kind = spec.kinds[int(rng.integers(len(spec.kinds)))]
    if kind == "foreign" and foreign is None:
        kind = "patch"
    size_px = rng.uniform(spec.min_size, spec.max_size) * min(h, w)
    edited = image.astype(np.float32)
    if kind == "stroke":
        coverage = _stroke(rng, h, w, size_px * 2) * rng.uniform(0.5, 1.0)
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        edited = edited * (1 - coverage[..., None]) + colour * coverage[..., None]
    else:
        region = _scar(rng, h, w, size_px * 2) if kind == "scar" else _blob(rng, h, w, size_px)
        source = foreign if kind == "foreign" else _shifted(rng, image)
        opacity = rng.uniform(0.5, 1.0) if kind == "foreign" else 1.0
        gain = rng.uniform(0.6, 1.4)
        pasted = np.clip(source.astype(np.float32) * gain, 0, 255)
        edited[region] = (1 - opacity) * edited[region] + opacity * pasted[region]
    edited = np.clip(np.rint(edited), 0, 255).astype(np.uint8)
    mask = (np.abs(edited.astype(np.int16) - image.astype(np.int16)).max(axis=2) > 2).astype(np.uint8)
    return edited, mask
