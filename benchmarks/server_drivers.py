"""The station's servers as benchmarks/server_cost.py runs them: each started as a station
starts it (its own process), with its clients in another process (benchmarks/stand_ins/
server_clients.py), and its counters and CPU time read back when it stops.

A driver: `start(tmp, context)` -> the station's sinks to add ({name: sink}); `stop()` -> the
run's entry (clients connected, published, dropped, what the clients got, the server
process's CPU seconds; for OPC UA the verdict -> event latencies the clients timed).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.cpu_cost import process_cpu_s
from benchmarks.stand_ins.server_clients import PLC_URI, USER, browsers_process, plcs_process


class _ServerUnderLoad:
    """What both drivers are given: the station's config and manifest, how many clients, the
    clients' password hash, and the server process's CPU priority."""

    def __init__(self, config, manifest, clients: int, password_hash: str, priority) -> None:
        self._config, self._manifest, self._clients, self._hash = config, manifest, clients, password_hash
        self._priority = priority  # the server process's: a nice value or "idle"; None: the setting's default

    def _about(self) -> dict:
        return {"line": self._config.line_id, "station": self._config.station_id, "model_id": self._manifest.model_id}


class PageUnderLoad(_ServerUnderLoad):
    """The operator page with browser stand-ins."""

    name = "hmi"

    def start(self, tmp: Path, context) -> dict:
        from edge.hmi.process import start_page_process
        from edge.hmi.settings import HmiSettings

        settings = HmiSettings(
            port=0,
            users={USER: {"role": "viewer", "password_hash": self._hash}},
            data_dir=tmp / "hmi",
            review_dir=tmp / "review",
            **_priority_setting(self._priority),
        )
        self._page = start_page_process(settings, self._config.line_id, lambda: {"status": "ok"}, self._about())
        self._stop, self._counts = context.Event(), context.Array("l", 2)
        self._helpers = context.Process(
            target=browsers_process, args=(self._page.url, self._clients, self._stop, self._counts)
        )
        self._helpers.start()
        _wait(lambda: self._page.feed.stats()["clients"] >= self._clients)
        self._cpu_at_start = process_cpu_s(self._page.pid)
        return {"hmi": self._page.feed}

    def stop(self) -> dict:
        stats = self._page.feed.stats()
        server_cpu_s = process_cpu_s(self._page.pid) - self._cpu_at_start
        self._stop.set()
        self._helpers.join(timeout=15)
        self._page.close()
        return {
            "clients_connected": stats["clients"],
            "server_published": stats["written"],
            "server_dropped": stats["dropped"],
            "client_updates": int(self._counts[0]),
            "pictures_fetched": int(self._counts[1]),
            "server_process_cpu_s": server_cpu_s,
        }


class OpcUaUnderLoad(_ServerUnderLoad):
    """The OPC UA server with PLC stand-ins."""

    name = "opcua"

    def start(self, tmp: Path, context) -> dict:
        import asyncio
        import shutil
        import socket

        from asyncua.crypto.cert_gen import setup_self_signed_certificate
        from cryptography.x509.oid import ExtendedKeyUsageOID

        from edge.opcua.process import OpcUaLink
        from edge.opcua.settings import OpcUaSettings
        from edge.sinks.mqtt.broker import free_port

        pki = tmp / "pki"
        (pki / "trusted").mkdir(parents=True)
        asyncio.run(
            setup_self_signed_certificate(
                pki / "plc_key.pem",
                pki / "plc_cert.der",
                PLC_URI,
                socket.gethostname(),
                [ExtendedKeyUsageOID.CLIENT_AUTH],
                {"commonName": "bench plc"},
            )
        )
        shutil.copy(pki / "plc_cert.der", pki / "trusted" / "plc.der")
        settings = OpcUaSettings(
            host="127.0.0.1",
            port=free_port(),
            users={USER: {"role": "viewer", "password_hash": self._hash}},
            pki_dir=pki,
            **_priority_setting(self._priority),
        )
        sources = [f"cam{i}" for i in range(8)]
        self._server = OpcUaLink(settings, self._about(), sources).start()
        self._stop, self._counts, self._latencies = context.Event(), context.Array("l", 2), context.Queue()
        self._helpers = context.Process(
            target=plcs_process,
            args=(self._server.endpoint, self._clients, str(pki), self._stop, self._counts, self._latencies),
        )
        self._helpers.start()
        _wait(lambda: self._counts[1] >= self._clients, timeout_s=60)
        self._cpu_at_start = process_cpu_s(self._server.pid)
        return {"opcua": self._server}

    def stop(self) -> dict:
        import queue

        time.sleep(0.5)  # the last events reach the clients
        stats = self._server.stats()
        server_cpu_s = process_cpu_s(self._server.pid) - self._cpu_at_start
        self._stop.set()
        try:
            arrivals = self._latencies.get(timeout=30)
        except queue.Empty:
            arrivals = []
        self._helpers.join(timeout=15)
        self._server.close()
        entry = {
            "clients_connected": int(self._counts[1]),
            "server_published": stats["published"],
            "server_dropped": stats["dropped"],
            "client_updates": int(self._counts[0]),
            "server_process_cpu_s": server_cpu_s,
        }
        if arrivals:
            entry["verdict_to_event_ms"] = {
                "p50": float(np.percentile(arrivals, 50)),
                "p99": float(np.percentile(arrivals, 99)),
                "count": len(arrivals),
            }
        return entry


def _wait(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def _priority_setting(priority) -> dict:
    return {} if priority is None else {"nice": priority}
