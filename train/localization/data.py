"""Localization dataset: images and masks of a split.json, at the model's input size.

Images stay uint8 BGR NHWC (what a camera delivers); normalisation happens inside the
model graph (eiad/modeling/engine.py Preprocess), so training sees exactly what the edge
feeds the exported engine. The resize to the spec size (stretch, INTER_LINEAR) is the
same one the edge applies.

Augmentation (training only, seeded per epoch and item) imitates what changes between
shots of a line camera, not what a photo editor does: flips; a small shift, rotation and
scale of the part (a trigger is never perfectly timed); exposure (gain) and white-balance
(per-channel gain) drift; sensor noise; a slight defocus blur. The mask moves with the
image (nearest neighbour, so it stays binary); photometric changes leave it alone.
Each item also carries the mask's skeleton (its one-pixel centre lines), for the loss term
that rewards finding thin defects along their whole length.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from eiad.errors import DataError
from eiad.split import ImageEntry, SplitIndex
from train.localization.pseudo_defects import PseudoDefects, draw

log = logging.getLogger(__name__)


def data_fingerprint(split_path: Path) -> str:
    """sha256 of split.json (which images, which split): stored with every checkpoint."""
    path = Path(split_path)
    if path.is_dir():
        path = path / "split.json"
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class CameraJitter:
    """Ranges of the camera-like augmentation (each drawn uniformly per item)."""

    shift_px: float = 6.0  # part offset, each axis, +/-
    rotate_deg: float = 4.0  # +/-
    scale: float = 0.04  # 1 +/- this
    gain: float = 0.15  # exposure: 1 +/- this
    white_balance: float = 0.06  # per channel: 1 +/- this
    noise_std: float = 3.0  # sensor noise, grey levels, up to
    blur_probability: float = 0.3
    blur_sigma_px: float = 0.8  # up to


def jitter(
    image: np.ndarray, masks: list[np.ndarray], rng: np.random.Generator, spec: CameraJitter
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One camera-like draw applied to a uint8 BGR image and its uint8 masks (same geometry)."""
    h, w = image.shape[:2]
    angle = rng.uniform(-spec.rotate_deg, spec.rotate_deg)
    scale = 1 + rng.uniform(-spec.scale, spec.scale)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-spec.shift_px, spec.shift_px, 2)
    image = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    masks = [cv2.warpAffine(m, matrix, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT) for m in masks]
    pixels = image.astype(np.float32) * (1 + rng.uniform(-spec.gain, spec.gain))
    pixels *= 1 + rng.uniform(-spec.white_balance, spec.white_balance, 3).astype(np.float32)
    if rng.random() < spec.blur_probability:
        pixels = cv2.GaussianBlur(pixels, (0, 0), rng.uniform(0.3, spec.blur_sigma_px))
    pixels += rng.normal(0, rng.uniform(0, spec.noise_std), pixels.shape).astype(np.float32)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8), masks


def skeleton_of(mask: np.ndarray) -> np.ndarray:
    """uint8 {0,1} one-pixel centre lines of a {0,1} mask (scikit-image's skeletonize)."""
    if not mask.any():
        return np.zeros_like(mask)
    from skimage.morphology import skeletonize

    return skeletonize(mask.astype(bool)).astype(np.uint8)


def read_pair(entry: ImageEntry, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 HxWx3 BGR, mask uint8 HxW in {0,1}) resized to the model size."""
    image = cv2.imread(entry.image, cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {entry.image} (listed in split.json): missing or not an image")
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    if entry.mask:
        mask = cv2.imread(entry.mask, cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise DataError(f"cannot read mask {entry.mask} of {entry.image}: missing or not an image")
        # Nearest keeps the mask binary; >127 is defect by the DDQA contract.
        mask = (cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST) > 127).astype(np.uint8)
    else:
        mask = np.zeros((height, width), np.uint8)
    return image, mask


class LocalizationDataset(Dataset):
    """Items: dict(image uint8 (H,W,3), mask float (1,H,W), skeleton float (1,H,W), label float,
    class_index long).

    Images are decoded once and cached in memory (uint8: a 224 px image is 150 KB).
    With `augment`, flips and the camera jitter (`camera`, None = flips only) are drawn
    per (seed, epoch, item), so a run is reproducible and a resumed run sees the same draws.
    """

    def __init__(
        self,
        index: SplitIndex,
        split: str,
        height: int,
        width: int,
        augment: bool = False,
        hflip: bool = True,
        vflip: bool = True,
        seed: int = 0,
        camera: CameraJitter | None = None,
        only_good: bool = False,
        pseudo: PseudoDefects | None = None,
    ) -> None:
        self.entries = [e for e in index.entries(split) if not (only_good and e.is_defective)]
        if not self.entries:
            what = "good images" if only_good else "images"
            raise DataError(f"split {split!r} of the split index has no {what}: rebuild it with more images")
        self.index, self.height, self.width = index, height, width
        self.augment, self.hflip, self.vflip, self.seed, self.camera = augment, hflip, vflip, seed, camera
        self.pseudo = pseudo  # good images only: pseudo-defects drawn on them (train/localization/pseudo_defects.py)
        self.epoch = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def label(self, i: int) -> int:
        return int(self.entries[i].is_defective)

    def _cached(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if i not in self._cache:
            image, mask = read_pair(self.entries[i], self.height, self.width)
            self._cache[i] = (image, mask, skeleton_of(mask))
        return self._cache[i]

    def __getitem__(self, index: int) -> dict:
        # An index past the end carries its epoch (EpochSampler): data loader workers hold
        # their own copy of the dataset, so `self.epoch` set in the main process never reaches them.
        i, epoch = index % len(self.entries), max(self.epoch, index // len(self.entries))
        image, mask, skeleton = self._cached(i)
        defective = self.entries[i].is_defective
        if self.augment:
            rng = np.random.default_rng((self.seed, epoch, i))
            if self.pseudo is not None and rng.random() < self.pseudo.probability:
                other = self._cached(int(rng.integers(len(self.entries))))[0] if len(self.entries) > 1 else None
                image, mask = draw(rng, image, other, self.pseudo)
                skeleton, defective = skeleton_of(mask), bool(mask.any())
            if self.hflip and rng.random() < 0.5:
                image, mask, skeleton = image[:, ::-1], mask[:, ::-1], skeleton[:, ::-1]
            if self.vflip and rng.random() < 0.5:
                image, mask, skeleton = image[::-1], mask[::-1], skeleton[::-1]
            if self.camera is not None:
                image, (mask, skeleton) = jitter(
                    np.ascontiguousarray(image),
                    [np.ascontiguousarray(mask), np.ascontiguousarray(skeleton)],
                    rng,
                    self.camera,
                )
        entry = self.entries[i]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "mask": torch.from_numpy(np.ascontiguousarray(mask)).float().unsqueeze(0),
            "skeleton": torch.from_numpy(np.ascontiguousarray(skeleton)).float().unsqueeze(0),
            "label": torch.tensor(float(defective)),
            "class_index": torch.tensor(self.index.class_index(entry.defect) if entry.is_defective else -1),
        }


class EpochSampler(torch.utils.data.Sampler):
    """A seeded shuffle of the dataset whose indices carry the epoch (index + epoch * size),
    so the augmentation drawn for an item depends on the epoch also inside worker processes.
    Call `start_epoch` before each epoch; the order is a function of (seed, epoch): a resumed
    run sees the same batches. (Not `set_epoch`: accelerate calls that with its own count of
    passes, which restarts at 0 on resume.)

    With `good_share`, an epoch is every defective image plus as many good ones as make that
    share, a different draw of the good images each epoch: more good images (the variety a
    line's good parts have) without fewer defect images per step."""

    def __init__(self, size: int, seed: int, defective: list[bool] | None = None, good_share: float | None = None):
        self.size, self.seed, self.epoch = size, seed, 0
        self._bad = self._good = None
        if good_share is not None and defective is not None:
            bad = [i for i, d in enumerate(defective) if d]
            good = [i for i, d in enumerate(defective) if not d]
            wanted = round(len(bad) * good_share / (1.0 - good_share))
            if bad and 0 < wanted < len(good):  # otherwise the natural mix already has no more good images
                self._bad, self._good, self._wanted = torch.tensor(bad), torch.tensor(good), wanted

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size if self._bad is None else len(self._bad) + self._wanted

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self._bad is None:
            order = torch.randperm(self.size, generator=generator)
        else:
            good = self._good[torch.randperm(len(self._good), generator=generator)[: self._wanted]]
            chosen = torch.cat([self._bad, good])
            order = chosen[torch.randperm(len(chosen), generator=generator)]
        return iter((order + self.epoch * self.size).tolist())


def first_normal(index: SplitIndex, split: str = "train") -> ImageEntry:
    """The reference image for 1-shot mode: the first OK image of the split."""
    for entry in index.entries(split):
        if not entry.is_defective:
            return entry
    raise DataError(f"split {split!r} has no OK image to use as the 1-shot reference; add normal images")
