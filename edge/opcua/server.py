"""The OPC UA server: asyncua on its own thread and event loop, fed as a sink; a station runs
it in the server's own process (edge/opcua/process.py), tests also in theirs.

Address space (namespace `opcua.namespace_uri`, string node ids; docs/opcua.md maps each
to OPC 40100-1):

    Objects/VisionSystem                          the station (shaped after VisionSystemType)
      LineId, StationId, ModelId                  who it is and what it runs
      VisionStateMachine/CurrentState             Preoperational | Operational | Error | Halted
      ResultManagement/GetResultById(ResultId, Timeout) -> (Result, ResultHandle, Error)
      ResultManagement/ReleaseResultHandle(ResultHandle) -> Error
      TriggerInspection(CameraId, TimeoutMs) -> (ResultId, Error)   a PLC-triggered camera's next part
      Cameras/<camera>/<field>                    the camera's latest result, one variable per field
    ResultReadyEventType (subtype of BaseEventType), raised by VisionSystem (a notifier of
    the Server object) once per inspection, carrying the result's fields.

The station hands each result over without waiting: at most `queue_size` results wait for
the server's loop, more are dropped and counted (`dropped`), and the PLC's MQTT path never
sees the difference. A slow or stuck client costs the station nothing but its own
subscription queue (asyncua's, bounded per monitored item).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.opcua.nodes import FIELDS, add_camera_variables, field_value
from edge.opcua.publishing import floor_publishing_interval, push_events
from edge.opcua.results import ResultStore, result_fields
from edge.opcua.security import Users, secure
from edge.opcua.settings import OpcUaSettings
from edge.results import InspectionResult
from eiad.errors import ConfigError

log = logging.getLogger(__name__)

STATES = ("Preoperational", "Operational", "Error", "Halted")


class OpcUaServer:
    """A station sink (`handle`, `close`, `stats`) that runs the OPC UA server.
    `handle` and `set_state` may be called from any thread."""

    def __init__(
        self, settings: OpcUaSettings, resolve: Callable[[Path], Path], about: dict, cameras: list[str]
    ) -> None:
        self._s = settings
        self._pki = resolve(settings.pki_dir)
        self._about = about
        self._cameras = list(cameras)
        self._store = ResultStore(settings.result_store, settings.max_handles)
        self._lock = threading.Lock()  # guards the counters
        self._pending = 0
        self.dropped = 0
        self.published = 0
        self.failed = 0
        self.state = "Preoperational"
        self._failed_sources: set[str] = set()  # cameras that failed and have not delivered since (loop only)
        self._trigger: Callable[[str, float], str] | None = None  # camera, timeout -> inspection id
        self.endpoint = ""
        self.certificate_thumbprint = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="opcua-server", daemon=True)

    # --- life cycle -----------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> OpcUaServer:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise ConfigError("the OPC UA server did not start within 30 s")
        if self._error is not None:
            raise ConfigError(f"the OPC UA server could not start: {self._error}") from self._error
        return self

    def close(self) -> None:
        """Publish what is queued, set Halted, stop the server; idempotent."""
        loop = self._loop
        if loop is not None and self._stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15.0)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # reported by start() when it happens while starting
            self._error = error
            self._ready.set()
            if not isinstance(error, OSError | ConfigError):
                log.exception("the OPC UA server stopped")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._stop = asyncio.Event()
        server = await self._build()
        async with server:
            self._ready.set()
            log.info(
                "OPC UA server on %s (security: Basic256Sha256 Sign, SignAndEncrypt%s; %d user(s)); "
                "certificate %s, SHA-1 thumbprint %s",
                self.endpoint,
                ", None" if self._s.allow_none else "",
                len(self._s.users),
                self._pki / "own" / "cert.der",
                self.certificate_thumbprint,
            )
            publisher = asyncio.create_task(self._publish_loop())
            await self._stop.wait()
            self._queue.put_nowait(None)
            await publisher
            await self._write_state("Halted")

    # --- the station's side: never waits ------------------------------------------------------

    def handle(self, result: InspectionResult, image: np.ndarray | None = None) -> None:
        self.handle_fields(result_fields(result))

    def handle_fields(self, fields: dict) -> None:
        """One result as `result_fields` gives it (the station's process hands these over)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._lock:
            if self._pending >= self._s.queue_size:
                self.dropped += 1
                return
            self._pending += 1
        loop.call_soon_threadsafe(self._queue.put_nowait, fields)

    def set_state(self, state: str) -> None:
        """The station's state in the vision state machine (Operational while inspecting, ...)."""
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        loop = self._loop
        if loop is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._write_state(state), loop)

    def set_trigger(self, trigger: Callable[[str, float], str]) -> None:
        """What TriggerInspection calls (edge/app.py: the sources' PLC trigger); blocking, run off the loop."""
        self._trigger = trigger

    def source_failed(self, source_id: str, reason: str) -> None:
        """A camera failed or stalled (the watchdog restarts it): Error until it delivers again."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._source_failed(source_id, reason), loop)

    def stats(self) -> dict:
        with self._lock:
            return {
                "endpoint": self.endpoint,
                "state": self.state,
                "queued": self._pending,
                "published": self.published,
                "dropped": self.dropped,
                "failed": self.failed,
                "results_held": self._store.held,
            }

    # --- the server's loop --------------------------------------------------------------------

    async def _publish_loop(self) -> None:
        while True:
            fields = await self._queue.get()
            if fields is None:
                return
            try:
                await self._publish(fields)
            except Exception:  # one bad result must not end the server
                with self._lock:
                    self.failed += 1
                log.exception("OPC UA: could not publish %s", fields.get("ResultId"))
            finally:
                with self._lock:
                    self._pending -= 1

    async def _publish(self, fields: dict) -> None:
        from asyncua import ua

        self._store.add(fields)
        camera = fields["CameraId"]
        if camera not in self._camera_nodes:
            await self._add_camera(camera)
        nodes = self._camera_nodes[camera]
        for name, kind in FIELDS:
            variant = ua.Variant(field_value(fields, name), getattr(ua.VariantType, kind))
            await self._server.write_attribute_value(nodes[name].nodeid, ua.DataValue(variant))
        content = json.dumps(fields)
        message = ua.LocalizedText(f"{camera} {fields['Verdict']} {fields['DefectClass']}".rstrip())
        for generator in self._events:
            event = generator.event
            for name, _ in FIELDS:
                setattr(event, name, field_value(fields, name))
            event.IsPartial = False
            event.ResultContent = content
            event.Message = message
            event.Severity = 500 if fields["Verdict"] == "NG" else 100
            await generator.trigger()
        await push_events(self._server)  # not at the subscriptions' next cycle (edge/opcua/publishing.py)
        with self._lock:
            self.published += 1
        self._failed_sources.discard(camera)  # it delivers again
        if fields["Verdict"] == "REJECTED" and fields["Reason"].startswith("inference failed"):
            await self._write_state("Error")
        elif self.state in ("Preoperational", "Error") and not self._failed_sources:  # inspecting (again)
            await self._write_state("Operational")

    async def _source_failed(self, source_id: str, reason: str) -> None:
        self._failed_sources.add(source_id)
        if self.state != "Halted":
            log.warning("OPC UA: source %s failed (%s): state Error until it delivers again", source_id, reason)
            await self._write_state("Error")

    async def _write_state(self, state: str) -> None:
        from asyncua import ua

        self.state = state
        await self._server.write_attribute_value(
            self._state_node.nodeid, ua.DataValue(ua.Variant(ua.LocalizedText(state), ua.VariantType.LocalizedText))
        )

    async def _get_result(self, parent, result_id, timeout):
        from asyncua import ua

        found, handle, error = self._store.get(str(result_id.Value))
        return [
            ua.Variant(json.dumps(found) if found else "", ua.VariantType.String),
            ua.Variant(handle, ua.VariantType.UInt32),
            ua.Variant(error, ua.VariantType.Int32),
        ]

    async def _release(self, parent, handle):
        from asyncua import ua

        return [ua.Variant(self._store.release(int(handle.Value)), ua.VariantType.Int32)]

    async def _trigger_inspection(self, parent, camera, timeout_ms):
        """TriggerInspection(CameraId, TimeoutMs) -> (ResultId, Error): 0 read (the verdict follows
        as a ResultReady event with this ResultId), 1 no such PLC-triggered camera, 2 refused or timed out."""
        from asyncua import ua

        from edge.sources.trigger import NotTriggerable, TriggerError

        timeout_s = max(0.1, min(int(timeout_ms.Value or 5000), 60_000) / 1000.0)
        result_id, error = "", 1
        if self._trigger is not None:
            try:
                result_id = await asyncio.get_running_loop().run_in_executor(
                    None, self._trigger, str(camera.Value), timeout_s
                )
                error = 0
            except TriggerError as problem:
                error = 1 if isinstance(problem, NotTriggerable) else 2
                log.warning("OPC UA TriggerInspection: %s", problem)
        return [ua.Variant(result_id, ua.VariantType.String), ua.Variant(error, ua.VariantType.Int32)]

    # --- building the server ------------------------------------------------------------------

    async def _build(self):
        from asyncua import Server

        logging.getLogger("asyncua").setLevel(logging.WARNING)
        server = Server(user_manager=Users(self._s))
        await server.init()
        host = self._s.host
        self.endpoint = f"opc.tcp://{host}:{self._s.port}/eiad/"
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"EIAD Edge {self._about['line']}/{self._about['station']}")
        await server.set_application_uri(self._s.application_uri)
        self.certificate_thumbprint = await secure(server, self._s, self._pki, self._about["station"])
        self._server = server
        floor_publishing_interval(server, self._s.min_publishing_interval_ms)
        await self._address_space(server)
        return server

    async def _address_space(self, server) -> None:
        from asyncua import ua

        idx = await server.register_namespace(self._s.namespace_uri)
        self._idx = idx
        properties = [(name, getattr(ua.VariantType, kind)) for name, kind in FIELDS]
        properties += [("IsPartial", ua.VariantType.Boolean), ("ResultContent", ua.VariantType.String)]
        # BaseEventType/<ns>:ResultReadyEventType (asyncua numbers the type's node; browse it by name)
        event_type = await server.create_custom_event_type(idx, "ResultReadyEventType", properties=properties)
        objects = server.nodes.objects
        system = await objects.add_object(ua.NodeId("VisionSystem", idx), ua.QualifiedName("VisionSystem", idx))
        for name, key in (("LineId", "line"), ("StationId", "station"), ("ModelId", "model_id")):
            await system.add_variable(
                ua.NodeId(f"VisionSystem.{name}", idx), ua.QualifiedName(name, idx), self._about[key]
            )
        machine = await system.add_object(
            ua.NodeId("VisionSystem.VisionStateMachine", idx), ua.QualifiedName("VisionStateMachine", idx)
        )
        self._state_node = await machine.add_variable(
            ua.NodeId("VisionSystem.VisionStateMachine.CurrentState", idx),
            ua.QualifiedName("CurrentState", idx),
            ua.LocalizedText(self.state),
        )
        results = await system.add_object(
            ua.NodeId("VisionSystem.ResultManagement", idx), ua.QualifiedName("ResultManagement", idx)
        )
        await results.add_method(
            ua.NodeId("VisionSystem.ResultManagement.GetResultById", idx),
            ua.QualifiedName("GetResultById", idx),
            self._get_result,
            [ua.VariantType.String, ua.VariantType.Int32],
            [ua.VariantType.String, ua.VariantType.UInt32, ua.VariantType.Int32],
        )
        await results.add_method(
            ua.NodeId("VisionSystem.ResultManagement.ReleaseResultHandle", idx),
            ua.QualifiedName("ReleaseResultHandle", idx),
            self._release,
            [ua.VariantType.UInt32],
            [ua.VariantType.Int32],
        )
        await system.add_method(
            ua.NodeId("VisionSystem.TriggerInspection", idx),
            ua.QualifiedName("TriggerInspection", idx),
            self._trigger_inspection,
            [ua.VariantType.String, ua.VariantType.Int32],
            [ua.VariantType.String, ua.VariantType.Int32],
        )
        self._cameras_folder = await system.add_folder(
            ua.NodeId("VisionSystem.Cameras", idx), ua.QualifiedName("Cameras", idx)
        )
        self._camera_nodes: dict[str, dict] = {}
        for camera in self._cameras:
            await self._add_camera(camera)
        # Each event reaches subscriptions on the vision system and on the Server object (a
        # notifier of the Server, as OPC 10000-3 has it; asyncua delivers an event only to
        # subscriptions on the node that emits it, so it is emitted from both, source = system).
        await system.set_event_notifier([ua.EventNotifier.SubscribeToEvents])
        await server.nodes.server.add_reference(system.nodeid, ua.ObjectIds.HasNotifier)
        on_system = await server.get_event_generator(event_type, system)
        on_server = await server.get_event_generator(event_type, ua.ObjectIds.Server)
        on_server.event.SourceNode, on_server.event.SourceName = system.nodeid, "VisionSystem"
        self._events = (on_system, on_server)

    async def _add_camera(self, camera: str) -> None:
        self._camera_nodes[camera] = await add_camera_variables(self._cameras_folder, self._idx, camera)
