"""The OPC UA server in a process of its own, started and stopped by the station.

The station keeps `OpcUaLink`, a sink that hands each result (as `result_fields`, plain
values) and each camera failure to the server's process without waiting (`edge/sidecar.py`);
the server (asyncua, its event loop, the subscriptions, the result store) runs there, the
same `OpcUaServer` as ever. TriggerInspection asks the station over a pipe to trigger the
camera and waits for the answer there, never in the station.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from edge.opcua.results import result_fields
from edge.opcua.server import STATES
from edge.opcua.settings import OpcUaSettings
from edge.results import InspectionResult
from edge.sidecar import Sidecar, SidecarChild
from eiad.errors import ConfigError

log = logging.getLogger(__name__)

# what the server's process reports back, in this order (the state as its index in STATES)
_COUNTERS = ("queued", "published", "dropped", "failed", "results_held", "state")
_COUNTER_PERIOD_S = 0.05


class OpcUaLink:
    """The station's sink for the OPC UA server (`handle`, `source_failed`, `set_trigger`,
    `stats`, `close`): never waits."""

    def __init__(self, settings: OpcUaSettings, about: dict, cameras: list[str]) -> None:
        self._trigger: Callable[[str, float], str] | None = None
        self._sidecar = Sidecar(
            "eiad-opcua",
            _serve_opcua,
            (settings, about, list(cameras)),
            settings.queue_size,
            len(_COUNTERS),
            self._answer,
            settings.nice,
        )
        self.endpoint = ""
        self.certificate_thumbprint = ""

    def start(self) -> OpcUaLink:
        try:
            ready = self._sidecar.start()
        except RuntimeError as error:
            raise ConfigError(str(error)) from None
        self.endpoint, self.certificate_thumbprint = ready["endpoint"], ready["thumbprint"]
        log.info("OPC UA server on %s (process %s)", self.endpoint, self._sidecar.pid)
        return self

    @property
    def pid(self) -> int | None:
        return self._sidecar.pid

    @property
    def state(self) -> str:
        return STATES[self._sidecar.counters()[_COUNTERS.index("state")]]

    def handle(self, result: InspectionResult, image: np.ndarray | None = None) -> None:
        self._sidecar.offer(("result", result_fields(result)))

    def source_failed(self, source_id: str, reason: str) -> None:
        self._sidecar.offer(("source_failed", source_id, reason))

    def set_trigger(self, trigger: Callable[[str, float], str]) -> None:
        """What TriggerInspection calls in the station (the sources' PLC trigger)."""
        self._trigger = trigger

    def _answer(self, kind: str, args: tuple):
        """The server's questions: ("trigger", camera, timeout_s) -> ("ok", id) | (error kind, message)."""
        from edge.sources.trigger import NotTriggerable, TriggerError

        if kind != "trigger":
            raise ValueError(f"unknown question {kind!r}")
        if self._trigger is None:
            return "not_triggerable", "this station has no PLC-triggered camera"
        try:
            return "ok", self._trigger(*args)
        except NotTriggerable as problem:
            return "not_triggerable", str(problem)
        except TriggerError as problem:
            return "refused", str(problem)

    def stats(self) -> dict:
        counters = dict(zip(_COUNTERS, self._sidecar.counters(), strict=True))
        stats = {"endpoint": self.endpoint, "state": STATES[counters.pop("state")], **counters}
        stats["dropped"] += self._sidecar.refused
        stats["queued"] += self._sidecar.waiting()
        stats["running"] = self._sidecar.alive
        return stats

    def close(self) -> None:
        """The server publishes every result handed over, goes Halted and stops; idempotent."""
        self._sidecar.close()


def _serve_opcua(child: SidecarChild, settings: OpcUaSettings, about: dict, cameras: list[str]) -> None:
    """The server's process: `OpcUaServer` fed with the station's items."""
    from pathlib import Path

    from edge.opcua.server import OpcUaServer
    from edge.sources.trigger import NotTriggerable, TriggerError

    def trigger(camera: str, timeout_s: float) -> str:
        try:
            status, value = child.ask("trigger", camera, timeout_s, timeout_s=timeout_s + 2.0)
        except (TimeoutError, RuntimeError) as error:
            raise TriggerError(str(error)) from None
        if status == "ok":
            return value
        raise (NotTriggerable if status == "not_triggerable" else TriggerError)(value)

    server = OpcUaServer(settings, Path, about, cameras)
    try:
        server.start()
    except ConfigError as error:
        child.failed(str(error))
        return
    server.set_trigger(trigger)
    child.ready({"endpoint": server.endpoint, "thumbprint": server.certificate_thumbprint})

    def report() -> None:
        stats = server.stats()
        child.set_counters([STATES.index(stats[key]) if key == "state" else stats[key] for key in _COUNTERS])

    done = threading.Event()

    def keep_reporting() -> None:
        while not done.wait(_COUNTER_PERIOD_S):
            report()

    reporter = threading.Thread(target=keep_reporting, name="opcua-counters", daemon=True)
    reporter.start()
    for item in child.items():
        if item[0] == "result":
            server.handle_fields(item[1])
        else:
            server.source_failed(*item[1:])
    server.close()  # publishes what it holds, then Halted
    done.set()
    reporter.join()
    report()
