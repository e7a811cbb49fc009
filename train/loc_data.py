"""Localization dataset: images and masks of a split.json, at the model's input size.

Images stay uint8 BGR NHWC (what a camera delivers); normalisation happens inside the
model graph (eiad/modeling/engine.py Preprocess), so training sees exactly what the edge
feeds the exported engine. The resize to the spec size (stretch, INTER_LINEAR) is the
same one the edge applies.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from eiad.errors import DataError
from train.data.index import ImageEntry, SplitIndex

log = logging.getLogger(__name__)


def data_fingerprint(split_path: Path) -> str:
    """sha256 of split.json (which images, which split): stored with every checkpoint."""
    path = Path(split_path)
    if path.is_dir():
        path = path / "split.json"
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    """Items: dict(image uint8 (H,W,3), mask float (1,H,W), label float, class_index long).

    Images are decoded once and cached in memory (uint8: a 224 px image is 150 KB).
    Flips are applied per item when `augment` is set; a torch Generator seeded per item
    keeps them reproducible.
    """

    def __init__(self, index: SplitIndex, split: str, height: int, width: int,
                 augment: bool = False, hflip: bool = True, vflip: bool = True, seed: int = 0) -> None:
        self.entries = index.entries(split)
        if not self.entries:
            raise DataError(f"split {split!r} of the split index is empty: rebuild it with more images")
        self.index, self.height, self.width = index, height, width
        self.augment, self.hflip, self.vflip, self.seed = augment, hflip, vflip, seed
        self.epoch = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def label(self, i: int) -> int:
        return int(self.entries[i].is_defective)

    def __getitem__(self, i: int) -> dict:
        if i not in self._cache:
            self._cache[i] = read_pair(self.entries[i], self.height, self.width)
        image, mask = self._cache[i]
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            if self.hflip and rng.random() < 0.5:
                image, mask = image[:, ::-1], mask[:, ::-1]
            if self.vflip and rng.random() < 0.5:
                image, mask = image[::-1], mask[::-1]
        entry = self.entries[i]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "mask": torch.from_numpy(np.ascontiguousarray(mask)).float().unsqueeze(0),
            "label": torch.tensor(float(entry.is_defective)),
            "class_index": torch.tensor(self.index.class_index(entry.defect) if entry.is_defective else -1),
        }


def first_normal(index: SplitIndex, split: str = "train") -> ImageEntry:
    """The reference image for 1-shot mode: the first OK image of the split."""
    for entry in index.entries(split):
        if not entry.is_defective:
            return entry
    raise DataError(f"split {split!r} has no OK image to use as the 1-shot reference; add normal images")
