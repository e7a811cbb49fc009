"""The export artifact directory: create it safely, hash its files, write its manifest.

Rules (issue 4): an existing artifact is never overwritten without `force`; nothing is
written outside the output directory; every file is listed with its sha256 in
`manifest.json` (eiad/manifest.py is the format). Not thread-safe: one export at a time
per directory.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import logging
import shutil
from pathlib import Path

from eiad.errors import ArtifactError
from eiad.manifest import MANIFEST_NAME, FileEntry, Manifest, file_entry, load_manifest, write_manifest

log = logging.getLogger(__name__)

# Versions recorded in every manifest: an engine or graph is tied to the tools that built it.
_VERSIONED = ("torch", "transformers", "onnx", "onnxscript", "onnxruntime", "tensorrt")


def prepare_output_dir(out_dir: Path, force: bool) -> Path:
    """Create `out_dir` for a new artifact and return its resolved path.

    An existing artifact (a directory with manifest.json) is refused unless `force`;
    with `force` its contents are removed first. A non-empty directory that is not an
    artifact is always refused: `force` must never delete a user's unrelated files.
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
            raise ArtifactError(f"{out_dir} already holds an artifact: pass --force to replace it, or choose another --out")
        log.warning("replacing the artifact in %s (--force)", out_dir)
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


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


def add_files(out_dir: Path, roles: dict[str, str], drop_prefix: str | None = None) -> Manifest:
    """Add (or re-hash) files in an existing artifact's manifest and rewrite it.

    The existing files are verified first, so a tampered artifact is never blessed by a
    later export step. `drop_prefix` removes earlier entries under that folder (a rebuilt
    part replaces the old one rather than leaving stale hashes).
    """
    manifest = load_manifest(out_dir, verify_files=True)
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
