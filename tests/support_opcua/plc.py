"""An OPC UA client like a PLC's: its own certificate (trusted by the server when asked),
a user name and password, Basic256Sha256 SignAndEncrypt; subscribes to ResultReady events."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

CLIENT_URI = "urn:eiad-test:plc"
NAMESPACE = "urn:eiad-edge:machine-vision"


async def client_certificate(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / "plc_key.pem", folder / "plc_cert.der"
    await setup_self_signed_certificate(
        key, cert, CLIENT_URI, socket.gethostname(), [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "test plc"}
    )
    return key, cert


def make_client(url: str, user: str, password: str, key: Path, cert: Path, server_cert: Path, mode="SignAndEncrypt"):
    client = Client(url, timeout=10)
    client.application_uri = CLIENT_URI
    client.set_user(user)
    client.set_password(password)
    return client, client.set_security(
        SecurityPolicyBasic256Sha256,
        str(cert),
        str(key),
        server_certificate=str(server_cert),
        mode=getattr(ua.MessageSecurityMode, mode),
    )


@contextlib.asynccontextmanager
async def connected(url: str, password: str, key: Path, cert: Path, server_cert: Path):
    """The trusted PLC (user "plc", SignAndEncrypt) connected; yields (client, the vision system's namespace index)."""
    client, setup = make_client(url, "plc", password, key, cert, server_cert)
    await setup
    async with client:
        yield client, await client.get_namespace_index(NAMESPACE)


class EventLog:
    """A subscription handler that keeps every event's fields with the time it arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict]] = []

    def event_notification(self, event) -> None:
        fields = event.get_event_props_as_fields_dict()
        self.events.append((time.monotonic_ns(), {k: getattr(v, "Value", v) for k, v in fields.items()}))


async def wait_until(condition, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")
