"""The image index of a DDQA build: which images are in which split, with their masks.

`eiad data ddqa` writes `split.json` beside the jsonl files; the localization trainer,
the evaluators and the export parity checks read it back with `load_split`. It is the
one place that says "this image is held out", and for what:

- `train`        fits the weights;
- `calibration`  fits thresholds and confidence cut-offs, nothing else;
- `test`         every reported quality figure, never used to choose anything.

A threshold fitted on the images it is scored on gives the best achievable figure on
those images, not a held-out one: that is why there are three parts, not two.

split.json:
    {"seed": 0, "fractions": {"calibration": 0.2, "test": 0.2}, "root": "/abs/raw/root",
     "classes": ["crack", "hole", ...],          # sorted defect names of the whole tree
     "train": [ImageEntry, ...], "calibration": [...], "test": [...]}
ImageEntry (paths absolute):
    {"image": "/abs/.../x.png", "mask": "/abs/.../x.png" | null, "label": "OK" | "NG",
     "defect": "crack" | null, "dataset": "SynthLine", "sub": "metal"}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from eiad.errors import DataError

SPLIT_FILE = "split.json"
SPLITS = ("train", "calibration", "test")
Split = Literal["train", "calibration", "test"]


@dataclass(frozen=True)
class ImageEntry:
    image: str
    mask: str | None
    label: Literal["OK", "NG"]
    defect: str | None
    dataset: str
    sub: str

    @property
    def is_defective(self) -> bool:
        return self.label == "NG"


@dataclass(frozen=True)
class SplitIndex:
    seed: int
    fractions: dict[str, float]
    root: str
    classes: list[str]
    train: list[ImageEntry] = field(default_factory=list)
    calibration: list[ImageEntry] = field(default_factory=list)
    test: list[ImageEntry] = field(default_factory=list)

    def entries(self, split: Split) -> list[ImageEntry]:
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
        return getattr(self, split)

    def class_index(self, defect: str | None) -> int:
        """Index of a defect class in `classes`; -1 for a normal (OK) image."""
        return -1 if defect is None else self.classes.index(defect)


def save_split(path: Path, index: SplitIndex) -> None:
    payload = asdict(index)
    Path(path).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


def load_split(path: Path) -> SplitIndex:
    """Read `split.json` (or the directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / SPLIT_FILE
    if not path.is_file():
        raise DataError(f"{path} not found: build it with 'eiad data ddqa RAW_ROOT --out DIR'")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON ({error}); rebuild it with 'eiad data ddqa'") from error
    if isinstance(raw, dict) and "val" in raw and "test" not in raw:
        raise DataError(
            f"{path} has the old two-part layout (train/val): thresholds would be fitted and scored on "
            "the same images. Rebuild it with 'eiad data ddqa ROOT --out DIR --force', which writes "
            "train / calibration / test"
        )
    try:
        entries = {split: [ImageEntry(**item) for item in raw[split]] for split in SPLITS}
        return SplitIndex(
            seed=int(raw["seed"]),
            fractions={str(k): float(v) for k, v in raw["fractions"].items()},
            root=str(raw["root"]),
            classes=list(raw["classes"]),
            **entries,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DataError(f"{path} is not a valid split index ({error!r}); rebuild it with 'eiad data ddqa'") from error
