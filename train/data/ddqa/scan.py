"""Walk a tree in the DDQA raw layout and say which files are usable.

    <root>/<Dataset>/<Sub>/NG/<defect>/image/<stem>.<ext>
    <root>/<Dataset>/<Sub>/NG/<defect>/mask/<stem>.<ext2>   (white = defect)
    <root>/<Dataset>/<Sub>/OK/image/<stem>.<ext>

Discovery is cheap (directory listings); validation decodes every image and mask,
which is the slow part and shows a progress bar. Every problem becomes a `Skipped`
with a reason code (see `REASONS`) and a message naming the file; `Problems` either
records it (default) or raises `DataError` at once (strict). Dot-files (`.DS_Store`)
are ignored. Not thread-safe; a scan holds no state once it returns.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from eiad.errors import DataError
from train.data.ddqa.masks import MaskStats, decode, mask_stats

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
LAYOUT = "<root>/<Dataset>/<Sub>/NG/<defect>/{image,mask}/* and <root>/<Dataset>/<Sub>/OK/image/*"
PROGRESS_MIN_FILES = 100  # below this a bar is noise

# Reason code -> what it means (report.json and docs list the same codes).
REASONS: dict[str, str] = {
    "malformed_tree": "a file or folder where the DDQA layout expects something else",
    "outside_root": "a symlink that resolves outside the raw root",
    "unknown_extension": "a file without an image extension in an image or mask folder",
    "image_empty": "a 0-byte image file",
    "image_unreadable": "an image OpenCV cannot decode (corrupt or not an image)",
    "mask_missing": "an NG image without a mask of the same stem",
    "mask_ambiguous": "several masks (or NG images) share one stem",
    "mask_unreadable": "a mask that is empty (0 bytes) or cannot be decoded",
    "mask_size_mismatch": "a mask whose width/height differ from its image",
    "mask_empty": "an NG mask without any white (defect) pixel",
    "orphan_mask": "a mask without an image of the same stem",
}


@dataclass(frozen=True)
class Sample:
    """One usable image. `key` (root-relative POSIX path) seeds everything per image."""

    image: Path
    mask: Path | None
    dataset: str
    sub: str
    label: str  # "OK" | "NG"
    defect: str | None
    key: str
    width_px: int
    height_px: int
    stats: MaskStats | None  # None for OK images

    @property
    def group(self) -> tuple[str, str, str]:
        """The stratum of the split: (dataset, sub, defect name or "OK")."""
        return (self.dataset, self.sub, self.defect or "OK")


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str
    message: str


@dataclass(frozen=True)
class _Candidate:
    image: Path
    mask: Path | None
    mask_problem: tuple[str, str] | None  # (reason, message) found during discovery
    dataset: str
    sub: str
    defect: str | None


class Problems:
    """Collects skipped files, or raises on the first one when strict."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.items: list[Skipped] = []
        self.ignored: list[Skipped] = []  # root-level entries that are not datasets; never fatal

    def ignore(self, path: Path, message: str) -> None:
        log.info("ignored %s: %s", path, message)
        self.ignored.append(Skipped(str(path), "not_a_dataset", message))

    def add(self, path: Path, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown skip reason {reason!r}")  # a bug, not user input
        text = f"{path}: {message}"
        if self.strict:
            raise DataError(f"{text} (--strict stops at the first bad file; drop --strict to skip it)")
        log.warning("skipped %s", text)
        self.items.append(Skipped(str(path), reason, message))

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(item.reason for item in self.items).items()))


def scan_tree(root: Path, problems: Problems, progress: bool = True) -> list[Sample]:
    """Discover and validate every image under `root`; return the usable ones sorted by key."""
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DataError(f"raw root {root} is not a directory: pass the folder that holds <Dataset>/<Sub>/NG|OK")
    walker = _Walker(root, problems)
    candidates = walker.discover()
    if not candidates:
        raise DataError(f"no images found under {root}: expected the DDQA layout {LAYOUT}")
    from tqdm import tqdm  # light, but keep module import cheap for --help

    bar = tqdm(
        candidates,
        desc="reading images and masks",
        unit="img",
        disable=not progress or len(candidates) < PROGRESS_MIN_FILES,
    )
    samples = [s for s in (_validate(c, root, problems) for c in bar) if s is not None]
    return sorted(samples, key=lambda s: s.key)


class _Walker:
    def __init__(self, root: Path, problems: Problems) -> None:
        self.root = root
        self.real_root = root.resolve()
        self.problems = problems

    def _inside(self, path: Path) -> bool:
        if path.resolve().is_relative_to(self.real_root):
            return True
        self.problems.add(
            path,
            "outside_root",
            f"resolves to {path.resolve()}, outside the raw root {self.real_root}; "
            "copy the file into the tree or remove the symlink",
        )
        return False

    def _children(self, folder: Path) -> list[Path]:
        """Visible entries that stay inside the root, sorted for determinism."""
        try:
            entries = sorted(folder.iterdir())
        except OSError as error:  # permissions, a folder vanishing mid-scan
            self.problems.add(
                folder, "malformed_tree", f"cannot be listed ({error.strerror or error}); fix its permissions"
            )
            return []
        return [p for p in entries if not p.name.startswith(".") and self._inside(p)]

    def _dirs(self, folder: Path, expected: str) -> list[Path]:
        dirs = []
        for path in self._children(folder):
            if path.is_dir():
                dirs.append(path)
            else:
                self.problems.add(path, "malformed_tree", f"is a file where {expected} folders belong ({LAYOUT})")
        return dirs

    def discover(self) -> list[_Candidate]:
        found: list[_Candidate] = []
        for dataset in self._datasets():
            for sub in self._dirs(dataset, "<Sub>"):
                found += self._sub(sub, dataset.name)
        return found

    def _datasets(self) -> list[Path]:
        """Root entries that look like datasets. Loose files (README, a generator's report) and
        folders without any <Sub>/NG or <Sub>/OK (e.g. the synthetic line's stream/) sit beside
        datasets in real trees: they are listed as ignored, not treated as broken data."""
        datasets = []
        for path in self._children(self.root):
            if not path.is_dir():
                self.problems.ignore(path, "a file at the root level, not a <Dataset> folder")
            elif self._looks_like_dataset(path):
                datasets.append(path)
            else:
                self.problems.ignore(path, "no <Sub>/NG or <Sub>/OK folder inside, so not a dataset")
        return datasets

    @staticmethod
    def _looks_like_dataset(folder: Path) -> bool:
        """Any <Sub>/NG or <Sub>/OK inside; reports nothing (the real walk does that)."""
        try:
            return any((sub / part).is_dir() for sub in folder.iterdir() for part in ("NG", "OK"))
        except OSError:
            return True  # let the walk report the unreadable folder

    def _sub(self, sub: Path, dataset: str) -> list[_Candidate]:
        found: list[_Candidate] = []
        entries = self._dirs(sub, "NG/OK")
        names = {p.name for p in entries}
        if not names & {"NG", "OK"}:
            self.problems.add(sub, "malformed_tree", "holds neither NG/ nor OK/; expected " + LAYOUT)
        for entry in entries:
            if entry.name == "OK":
                found += self._ok(entry, dataset, sub.name)
            elif entry.name == "NG":
                for defect in self._dirs(entry, "<defect>"):
                    found += self._defect(defect, dataset, sub.name)
            else:
                self.problems.add(entry, "malformed_tree", "unexpected folder: only NG/ and OK/ belong here")
        return found

    def _parts(self, folder: Path, allowed: tuple[str, ...], where: str) -> dict[str, Path]:
        """The allowed sub-folders that exist (and stay inside the root), by name."""
        parts = {}
        for path in self._dirs(folder, "/ and ".join(allowed) + "/"):
            if path.name in allowed:
                parts[path.name] = path
            else:
                self.problems.add(
                    path, "malformed_tree", f"unexpected folder: {where} holds only {'/ and '.join(allowed)}/"
                )
        return parts

    def _ok(self, ok: Path, dataset: str, sub: str) -> list[_Candidate]:
        parts = self._parts(ok, ("image",), "OK/")
        if "image" not in parts:
            self.problems.add(ok, "malformed_tree", "has no image/ folder; OK images go in OK/image/")
            return []
        return [_Candidate(p, None, None, dataset, sub, None) for p in self._files(parts["image"])]

    def _defect(self, defect: Path, dataset: str, sub: str) -> list[_Candidate]:
        parts = self._parts(defect, ("image", "mask"), "NG/<defect>/")
        if "image" not in parts:
            self.problems.add(defect, "malformed_tree", "has no image/ folder; defect images go in NG/<defect>/image/")
            return []
        images = self._files(parts["image"])
        masks = self._files(parts["mask"]) if "mask" in parts else []
        image_stems = Counter(p.stem for p in images)
        masks_by_stem: dict[str, list[Path]] = {}
        for mask in masks:
            masks_by_stem.setdefault(mask.stem, []).append(mask)
            if mask.stem not in image_stems:
                self.problems.add(mask, "orphan_mask", f"no image named {mask.stem}.* in {defect / 'image'}")
        found = []
        for image in images:
            matches = masks_by_stem.get(image.stem, [])
            problem = None
            if image_stems[image.stem] > 1 or len(matches) > 1:
                names = ", ".join(p.name for p in matches) or "-"
                problem = (
                    "mask_ambiguous",
                    f"stem {image.stem!r} is not unique (images: {image_stems[image.stem]}, "
                    f"masks: {names}); rename so each image has exactly one mask",
                )
            elif not matches:
                problem = (
                    "mask_missing",
                    f"no mask {defect / 'mask' / image.stem}.* (any of "
                    f"{', '.join(sorted(IMAGE_EXTENSIONS))}); add it or move the image out",
                )
            found.append(
                _Candidate(image, matches[0] if len(matches) == 1 else None, problem, dataset, sub, defect.name)
            )
        return found

    def _files(self, folder: Path) -> list[Path]:
        files = []
        for path in self._children(folder):
            if path.is_dir():
                self.problems.add(
                    path, "malformed_tree", f"nested folder inside {folder.name}/; put files directly there"
                )
            elif path.suffix.lower() not in IMAGE_EXTENSIONS:
                self.problems.add(
                    path,
                    "unknown_extension",
                    f"extension {path.suffix or '(none)'!r} is not one of {', '.join(sorted(IMAGE_EXTENSIONS))}",
                )
            else:
                files.append(path)
        return files


def _validate(cand: _Candidate, root: Path, problems: Problems) -> Sample | None:
    image, reason = decode(cand.image, grayscale=False)
    if image is None:
        code = "image_empty" if reason == "empty" else "image_unreadable"
        problems.add(
            cand.image,
            code,
            "0-byte file; re-export the image"
            if reason == "empty"
            else f"cannot be decoded as an image ({reason}); replace or remove it",
        )
        return None
    height, width = image.shape[:2]
    key = cand.image.relative_to(root).as_posix()
    label = "OK" if cand.defect is None else "NG"
    if label == "OK":
        return Sample(cand.image, None, cand.dataset, cand.sub, label, None, key, width, height, None)
    if cand.mask_problem is not None:
        problems.add(cand.image, *cand.mask_problem)
        return None
    mask, reason = decode(cand.mask, grayscale=True)
    if mask is None:
        problems.add(cand.mask, "mask_unreadable", f"mask of {cand.image.name} cannot be decoded ({reason})")
        return None
    if mask.shape[:2] != (height, width):
        problems.add(
            cand.mask,
            "mask_size_mismatch",
            f"mask is {mask.shape[1]}x{mask.shape[0]} px but image {cand.image.name} is "
            f"{width}x{height} px; masks must match their image pixel for pixel",
        )
        return None
    stats = mask_stats(mask)
    if stats is None:
        problems.add(
            cand.mask,
            "mask_empty",
            f"no white (>127) pixel, so {cand.image.name} shows no defect; fix the mask or move the image to OK/",
        )
        return None
    return Sample(cand.image, cand.mask, cand.dataset, cand.sub, label, cand.defect, key, width, height, stats)
