"""DDQA jsonl records for the dialog path, in both forms ms-swift accepts.

- swift 2.x: {"query": "<image>question", "response": "B", "images": ["a.jpg"]}
- messages:  {"messages": [{"role": "user", "content": "<image>..."},
              {"role": "assistant", "content": "B"}], "images": ["a.jpg"]}
Relative image paths are resolved against the jsonl file's folder first, then the
current directory. Each record must name exactly one image.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from eiad.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DialogRecord:
    """One question about one image and its reference answer; `where` is "file:line"."""

    image: Path
    question: str
    answer: str
    where: str

    def load_image(self) -> Image.Image:
        try:
            with Image.open(self.image) as img:
                return img.convert("RGB")
        except OSError as exc:
            raise DataError(f"{self.where}: cannot read image {self.image}: {exc}") from exc


def read_ddqa(path: Path, *, check_images: bool = True) -> list[DialogRecord]:
    """All records of a DDQA jsonl file; DataError naming file:line on any malformed one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: DDQA file not found; build it with `eiad data ddqa` or pass an existing .jsonl")
    records: list[DialogRecord] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg})") from exc
            records.extend(_parse(obj, where, path.parent, check_images))
    if not records:
        raise DataError(f"{path}: no records")
    return records


def _parse(obj: object, where: str, base: Path, check_images: bool) -> list[DialogRecord]:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: a record must be a JSON object")
    image = _image(obj.get("images"), where, base, check_images)
    if "query" in obj or "response" in obj:
        query, response = obj.get("query"), obj.get("response")
        if not isinstance(query, str) or not isinstance(response, str):
            raise DataError(f"{where}: swift 2.x records need string 'query' and 'response'")
        return [DialogRecord(image, query, response, where)]
    messages = obj.get("messages")
    if not isinstance(messages, list):
        raise DataError(f"{where}: record has neither 'query'/'response' nor a 'messages' list")
    out, pending = [], None
    for msg in messages:
        role, content = (msg.get("role"), msg.get("content")) if isinstance(msg, dict) else (None, None)
        if not isinstance(content, str) or role not in ("system", "user", "assistant"):
            raise DataError(f"{where}: each message needs role system/user/assistant and string content")
        if role == "user":
            pending = content
        elif role == "assistant":
            if pending is None:
                raise DataError(f"{where}: assistant message without a preceding user message")
            out.append(DialogRecord(image, pending, content, where))
            pending = None
    if not out:
        raise DataError(f"{where}: messages hold no user/assistant pair")
    return out


def _image(images: object, where: str, base: Path, check: bool) -> Path:
    if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str):
        raise DataError(f"{where}: 'images' must be a list with exactly one path")
    raw = Path(images[0])
    candidates = [raw] if raw.is_absolute() else [base / raw, raw]
    for cand in candidates:
        if cand.is_file():
            return cand
    if check:
        raise DataError(f"{where}: image {images[0]} not found (looked in {', '.join(map(str, candidates))})")
    return candidates[0]
