"""The contract every frame source fulfils, and what a read returns.

A source is a plain blocking reader: `open()`, then `read()` until it returns None (a
finite source such as a file has ended) or raises `SourceError` (a camera failed; the
source worker closes it and opens a fresh one after a back-off). Sources know nothing
of threads, queues or policies: `edge/sources/watchdog.py` runs each one in its own
reader thread and restarts it when it stalls, so a read that hangs never hangs the loop.

Thread safety: a source instance is used by one reader thread at a time; `close()` may
be called from another thread (the watchdog) while `read()` hangs, so it must not
block on a lock the read holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Capture:
    """One image as a source delivers it; the worker turns it into a `Frame`.

    `image` should be HxWx3 uint8 BGR; anything else is passed on and rejected by the
    pipeline with a reason (never silently fixed here). `truth` is ground truth where the
    source knows it. `captured_unix_s` is the camera's time if it has one, else None
    (the worker stamps the read time).
    """

    image: np.ndarray
    truth: dict | None = None
    captured_unix_s: float | None = None


IDLE = Capture(image=None)  # type: ignore[arg-type]
"""Returned by `read()` when the source is alive but had nothing to deliver (no trigger
within the fetch timeout, no new file in a watched folder): resets the stall watchdog,
makes no frame."""


class Source(Protocol):
    source_id: str

    def open(self) -> None:
        """Connect to the camera / open the file; raise SourceError with the fix if it fails."""

    def read(self) -> Capture | None:
        """Block until the next image; IDLE when alive but idle; None when a finite source has ended."""

    def close(self) -> None:
        """Release the device; idempotent, callable from another thread."""
