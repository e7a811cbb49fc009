"""DDQA record forms and the jsonl writer.

Two forms ms-swift reads:
- "query" (swift 2.x): {"query": "<image>...", "response": "B", "images": [path]}
- "messages" (swift 3.x): {"messages": [{"role": "user", "content": "<image>..."},
  {"role": "assistant", "content": "B"}], "images": [path]}
Records carry only these documented keys: ms-swift gives meaning to some extra keys
(`label`, `objects`, `tools`, ...), so the task lives in the file name, not in a key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from train.data.ddqa.questions import Question

RecordFormat = Literal["query", "messages"]
RECORD_FORMATS: tuple[str, ...] = ("query", "messages")
IMAGE_TAG = "<image>"


def image_reference(image: Path, out_dir: Path, relative: bool) -> str:
    """Absolute path, or the path relative to the output directory (POSIX separators)."""
    image = Path(image).absolute()
    if not relative:
        return str(image)
    return Path(os.path.relpath(image, Path(out_dir).absolute())).as_posix()


def to_record(question: Question, form: RecordFormat, image: str) -> dict:
    prompt = IMAGE_TAG + question.prompt
    if form == "query":
        return {"query": prompt, "response": question.answer, "images": [image]}
    if form == "messages":
        return {
            "messages": [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": question.answer},
            ],
            "images": [image],
        }
    raise ValueError(f"unknown record format {form!r}")  # validated by DdqaOptions


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    """Write one JSON object per line via a temporary file and an atomic rename, so an
    interrupted build never leaves a half-written file under the final name."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def write_json(path: Path, payload: dict) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
