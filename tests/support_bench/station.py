"""A station.yaml around F's tiny torch-free artifact, for `eiad bench line|sweep` tests."""

from __future__ import annotations

from pathlib import Path

from benchmarks.stand_ins.artifact import build_tiny_artifact


def tiny_station(directory: Path, max_batch: int = 1) -> Path:
    """Write artifact/ + station.yaml (no video source: the bench replays synthetic frames)."""
    directory = Path(directory)
    build_tiny_artifact(directory / "artifact")
    path = directory / "station.yaml"
    path.write_text(
        "station_id: bench-test\nline_id: line-t\nartifact: artifact\n"
        "sources:\n  - {kind: folder, id: cam0, path: frames}\n"
        f"batching: {{max_batch: {max_batch}, max_wait_ms: 0}}\n"
        "metrics: {enabled: false}\nmqtt: {host: 127.0.0.1, port: 1883}\n",
        encoding="utf-8",
    )
    return path
