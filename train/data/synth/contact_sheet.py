"""A contact sheet: a grid of (image | mask overlay in red) pairs with labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from train.data.synth.writer import write_png

_LABEL_PX = 16


@dataclass(frozen=True)
class SheetEntry:
    """One cell of the sheet: a label, the RGB image and its 0/255 mask."""

    label: str
    image: np.ndarray
    mask: np.ndarray


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with mask pixels tinted red (half image, half pure red)."""
    out = image.copy()
    hit = mask > 0
    out[hit] = (image[hit] * 0.45 + np.array([140, 0, 0])).astype(np.uint8)
    return out


def _cell(entry: SheetEntry, tile_px: int) -> np.ndarray:
    image = cv2.resize(entry.image, (tile_px, tile_px), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(entry.mask, (tile_px, tile_px), interpolation=cv2.INTER_NEAREST)
    pair = np.hstack([image, np.full((tile_px, 2, 3), 255, np.uint8), overlay(image, mask)])
    label = np.zeros((_LABEL_PX, pair.shape[1], 3), np.uint8)
    cv2.putText(label, entry.label, (3, _LABEL_PX - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([label, pair])


def write_contact_sheet(entries: list[SheetEntry], path: Path, tile_px: int = 160, columns: int = 4) -> None:
    """Write the grid as PNG; rows of `columns` cells, empty cells left black."""
    if not entries:
        return
    cells = [_cell(entry, tile_px) for entry in entries]
    blank = np.zeros_like(cells[0])
    rows = []
    for start in range(0, len(cells), columns):
        row = cells[start : start + columns]
        row += [blank] * (columns - len(row))
        rows.append(np.hstack([np.pad(c, ((0, 4), (0, 4), (0, 0)), constant_values=30) for c in row]))
    write_png(path, np.vstack(rows))
