"""The export artifact directory: create it safely, hash its files, write its manifest.

Rules: an existing artifact is never overwritten without `force`; nothing is written
outside the output directory; every file is listed with its sha256 in `manifest.json`
(eiad/manifest.py is the format). An export is built in a staging folder beside the
output and moved into place only after every gate passed (`staged_artifact`): a failed
export leaves nothing behind and the previous artifact byte-identical. Not thread-safe:
one export at a time per directory.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eiad.errors import ArtifactError
from eiad.manifest import MANIFEST_NAME, FileEntry, Manifest, file_entry, load_manifest, write_manifest

log = logging.getLogger(__name__)

# Versions recorded in every manifest: an engine or graph is tied to the tools that built it.
_VERSIONED = ("torch", "transformers", "onnx", "onnxscript", "onnxruntime", "tensorrt")


def check_output_dir(out_dir: Path, force: bool) -> Path:
    """The resolved `out_dir` if a new artifact may go there; ArtifactError otherwise.

    An existing artifact (a directory with manifest.json) is refused unless `force`. A
    non-empty directory that is not an artifact is always refused: `force` must never
    delete a user's unrelated files. Nothing is created or removed here.
    """
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise ArtifactError(f"{out_dir} exists and is not a directory: choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MANIFEST_NAME).is_file():
            raise ArtifactError(
                f"{out_dir} is not empty and holds no {MANIFEST_NAME}: it is not an export artifact, "
                "so it is left alone even with --force; choose an empty or new --out directory"
            )
        if not force:
            raise ArtifactError(
                f"{out_dir} already holds an artifact: pass --force to replace it, or choose another --out"
            )
    return out_dir


@contextmanager
def staged_artifact(out_dir: Path, force: bool) -> Iterator[Path]:
    """A fresh staging folder beside `out_dir` to build a whole artifact in.

    When the block returns, the staging folder replaces `out_dir` (an earlier artifact is
    moved aside, the new one renamed in, the old one deleted: renames on one file system,
    so no reader ever sees half an artifact). When the block raises, the staging folder is
    deleted and `out_dir` is untouched, byte for byte.
    """
    out_dir = check_output_dir(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_in(staging, out_dir)


def swap_in(staging: Path, out_dir: Path) -> None:
    """Replace `out_dir` (if any) by the finished `staging` folder."""
    old = None
    if out_dir.exists():
        if any(out_dir.iterdir()):
            log.warning("replacing the artifact in %s (--force)", out_dir)
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def inside(out_dir: Path, relative: str | Path) -> Path:
    """`out_dir / relative`, refusing any path that would land outside `out_dir`."""
    root = Path(out_dir).resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise ArtifactError(f"refusing to write {target}: it is outside the artifact directory {root}")
    return target


def tool_versions() -> dict[str, str]:
    """Versions of the export tool chain that are importable here (absent ones are left out)."""
    found = {}
    for name in _VERSIONED:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a broken optional install is just "absent" here
            continue
        found[name] = str(getattr(module, "__version__", "unknown"))
    return found


def hash_files(out_dir: Path, roles: dict[str, str]) -> dict[str, FileEntry]:
    """FileEntry for each `relative path -> role`; every path must exist inside `out_dir`."""
    entries = {}
    for relative, role in roles.items():
        path = inside(out_dir, relative)
        if not path.is_file():
            raise ArtifactError(f"export produced no {path} ({role}); the export is incomplete")
        entries[Path(relative).as_posix()] = file_entry(path, role)
    return entries


def write_new_manifest(out_dir: Path, manifest: Manifest, roles: dict[str, str]) -> Path:
    """Hash `roles` files and write the manifest with them, the tool versions and a timestamp."""
    files = hash_files(out_dir, roles)
    stamped = manifest.model_copy(
        update={
            "files": files,
            "versions": {**tool_versions(), **manifest.versions},
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    Manifest.model_validate(stamped.model_dump())  # model_copy skips validation: re-check
    return write_manifest(out_dir, stamped)


def add_files(out_dir: Path, roles: dict[str, str], drop_prefix: str | None = None, verify: bool = True) -> Manifest:
    """Add (or re-hash) files in an existing artifact's manifest and rewrite it.

    The existing files are verified first (unless the caller just did, `verify=False`), so
    a tampered artifact is never blessed by a later export step. `drop_prefix` removes
    earlier entries under that folder (a rebuilt part replaces the old one rather than
    leaving stale hashes).
    """
    manifest = load_manifest(out_dir, verify_files=verify)
    files = {k: v for k, v in manifest.files.items() if not (drop_prefix and k.startswith(drop_prefix))}
    files.update(hash_files(out_dir, roles))
    updated = manifest.model_copy(update={"files": files, "versions": {**manifest.versions, **tool_versions()}})
    write_manifest(out_dir, updated)
    return updated


def existing_artifact(out_dir: Path) -> Path:
    """Resolve an existing artifact directory, or say how to make one."""
    out_dir = Path(out_dir).expanduser().resolve()
    if not (out_dir / MANIFEST_NAME).is_file():
        raise ArtifactError(
            f"{out_dir} holds no {MANIFEST_NAME}: export the vision engine first with "
            f"'eiad export onnx --checkpoint DIR --out {out_dir}'"
        )
    return out_dir
