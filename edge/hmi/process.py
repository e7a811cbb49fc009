"""The operator page in a process of its own, started and stopped by the station.

The station keeps only `PageLink`, a sink that hands each result (with its frame, when
the page keeps it) and each explanation to the page's process without waiting
(`edge/sidecar.py`); everything else (the history's SQLite and pictures, the web server,
the browsers' event streams) runs there, at a lower CPU priority, the same code as
`start_hmi`. The page asks the station for its health when a browser asks for it, so the
page shows the station's own counters, never a copy that could be stale.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.hmi.settings import HmiSettings
from edge.results import InspectionResult
from edge.sidecar import Sidecar, SidecarChild
from eiad.errors import ConfigError

log = logging.getLogger(__name__)

# what the page's process reports back, in this order (LiveFeed.stats's keys)
_COUNTERS = ("queued", "written", "dropped", "failed", "clients", "client_updates_dropped")
_COUNTER_PERIOD_S = 0.1


class PageLink:
    """The station's sink for the page (`handle`, `handle_explanation`, `stats`, `close`): never waits."""

    def __init__(self, sidecar: Sidecar, save: str) -> None:
        self._sidecar, self._save = sidecar, save

    def handle(self, result: InspectionResult, image: np.ndarray | None = None) -> None:
        keep = image is not None and (self._save == "all" or result.verdict == "NG")
        self._sidecar.offer(("result", result, image if keep else None))

    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        self._sidecar.offer(("explanation", inspection_id, text, dict(meta)))

    def stats(self) -> dict:
        stats = dict(zip(_COUNTERS, self._sidecar.counters(), strict=True))
        stats["dropped"] += self._sidecar.refused
        stats["queued"] += self._sidecar.waiting()
        stats["running"] = self._sidecar.alive
        return stats

    def close(self) -> None:
        """The page's process stores every result handed over, then stops; idempotent."""
        self._sidecar.close()


@dataclass
class PageProcess:
    feed: PageLink
    url: str
    pid: int | None

    def close(self) -> None:
        self.feed.close()


def start_page_process(settings: HmiSettings, line: str, health: Callable[[], dict], about: dict) -> PageProcess:
    """Start the page's process (paths in `settings` already absolute); returns once it accepts connections."""

    def answer(kind: str, args: tuple):
        if kind == "health":
            return health()
        raise ValueError(f"unknown question {kind!r}")

    # a little more room than the page's own queue: the hand-over between processes takes turns
    sidecar = Sidecar(
        "eiad-hmi", _serve_page, (settings, line, about), 2 * settings.queue_size, len(_COUNTERS), answer, settings.nice
    )
    try:
        url = sidecar.start()
    except RuntimeError as error:
        raise ConfigError(str(error)) from None
    log.info("operator page on %s (process %s, %d user(s))", url, sidecar.pid, len(settings.users))
    return PageProcess(PageLink(sidecar, settings.save), url, sidecar.pid)


def _serve_page(child: SidecarChild, settings: HmiSettings, line: str, about: dict) -> None:
    """The page's process: the page as `start_hmi` builds it, fed with the station's items."""
    from pathlib import Path

    from edge.hmi.server import start_hmi

    def station_health() -> dict:
        try:
            return child.ask("health")
        except (TimeoutError, RuntimeError) as error:
            return {"status": "unknown", "problems": [f"the station's health is not available: {error}"]}

    try:
        page = start_hmi(settings, Path, line, station_health, about)
    except ConfigError as error:
        child.failed(str(error))
        return
    child.ready(page.url)
    done = threading.Event()

    def report() -> None:
        while not done.wait(_COUNTER_PERIOD_S):
            stats = page.feed.stats()
            child.set_counters([stats[key] for key in _COUNTERS])

    reporter = threading.Thread(target=report, name="hmi-counters", daemon=True)
    reporter.start()
    for item in child.items():
        if item[0] == "result":
            page.feed.handle(item[1], item[2])
        else:
            page.feed.handle_explanation(*item[1:])
    page.close()  # stores what the page's writer still holds
    done.set()
    reporter.join()
    stats = page.feed.stats()
    child.set_counters([stats[key] for key in _COUNTERS])
