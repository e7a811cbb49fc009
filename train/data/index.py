"""The image index of a DDQA build: which images are in which split, with their masks.

`eiad data ddqa` writes `split.json` beside the jsonl files; the localization trainer,
the evaluators and the export parity checks read it back with `load_split`. It is the
one place that says "this image is held out".

split.json:
    {"seed": 0, "val_fraction": 0.2, "root": "/abs/raw/root",
     "classes": ["crack", "hole", ...],          # sorted defect names of the whole tree
     "train": [ImageEntry, ...], "val": [ImageEntry, ...]}
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
    val_fraction: float
    root: str
    classes: list[str]
    train: list[ImageEntry] = field(default_factory=list)
    val: list[ImageEntry] = field(default_factory=list)

    def entries(self, split: Literal["train", "val"]) -> list[ImageEntry]:
        if split not in ("train", "val"):
            raise DataError(f"unknown split {split!r}: use 'train' or 'val'")
        return self.train if split == "train" else self.val

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
        entries = {split: [ImageEntry(**item) for item in raw[split]] for split in ("train", "val")}
        return SplitIndex(
            seed=int(raw["seed"]),
            val_fraction=float(raw["val_fraction"]),
            root=str(raw["root"]),
            classes=list(raw["classes"]),
            **entries,
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path} is not a valid split index ({error}); rebuild it with 'eiad data ddqa'") from error
