"""Files on disk: the output-directory guard and PNG writing (DDQA raw layout).

Layout under the output directory:
    <dataset>/<part>/OK/image/<stem>.png
    <dataset>/<part>/NG/<defect>/image/<stem>.png
    <dataset>/<part>/NG/<defect>/mask/<stem>.png      (same stem; 255 = defect)
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np

from eiad.errors import DataError

log = logging.getLogger(__name__)

STREAM_DIR = "stream"
CONTACT_SHEET = "contact_sheet.png"
REPORT = "synth_report.json"


def own_entries(dataset_name: str) -> tuple[str, ...]:
    """Names `generate_line` writes at the top of the output directory (and may replace)."""
    return (dataset_name, STREAM_DIR, CONTACT_SHEET, REPORT)


def prepare_output(out_dir: Path, dataset_name: str, force: bool) -> None:
    """Create out_dir; refuse a non-empty one unless force, and then remove only ours."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"output path {out_dir} is a file; give a directory for --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    present = sorted(p.name for p in out_dir.iterdir())
    if not present:
        return
    if not force:
        raise DataError(
            f"output directory {out_dir} is not empty ({', '.join(present[:5])}"
            f"{', ...' if len(present) > 5 else ''}); choose an empty directory or pass "
            f"--force to replace the synthetic line's own files ({', '.join(own_entries(dataset_name))})"
        )
    for name in own_entries(dataset_name):
        path = out_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    kept = [name for name in present if name not in own_entries(dataset_name)]
    if kept:
        log.info("--force: kept %d entries that are not ours in %s: %s", len(kept), out_dir, kept[:5])


def image_path(root: Path, part: str, defect: str | None, stem: str) -> Path:
    """Where a DDQA raw image goes (defect None: an OK image)."""
    if defect is None:
        return root / part / "OK" / "image" / f"{stem}.png"
    return root / part / "NG" / defect / "image" / f"{stem}.png"


def mask_path(root: Path, part: str, defect: str, stem: str) -> Path:
    """Where the mask of a DDQA raw NG image goes (same stem as the image)."""
    return root / part / "NG" / defect / "mask" / f"{stem}.png"


def write_png(path: Path, array: np.ndarray) -> None:
    """Write an RGB (h, w, 3) or grey (h, w) uint8 array as PNG, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    if not cv2.imwrite(str(path), pixels):
        raise DataError(f"could not write {path}; check free disk space and permissions")
