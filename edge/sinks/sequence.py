"""The station's last sequence number in a small file (numbering for a station without MQTT)."""

from __future__ import annotations

import os
from pathlib import Path

from edge.results import InspectionResult


class SequenceFile:
    """Keeps the last sequence number in a small file: the station's numbering for a station
    without MQTT, and a second record beside the outbox's (which is the durable one).

    It is called after the MQTT sink, so it never runs ahead of a stored verdict: a kill
    between the two leaves it one behind, and the start takes the larger of both. One
    `pwrite` into the page cache per result (microseconds, no fsync): survives a killed
    process, not a power cut (then numbering may repeat a few numbers; ids stay unique).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        text = os.pread(self._fd, 32, 0).decode("ascii", "replace").strip()
        self.last = int(text) if text.isdigit() else 0

    def handle(self, result: InspectionResult, image=None) -> None:
        os.pwrite(self._fd, f"{result.sequence:>20}\n".encode(), 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
