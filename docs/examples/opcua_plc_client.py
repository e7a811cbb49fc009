"""A PLC's view of the station over OPC UA, with asyncua: connect on the secured endpoint,
follow each result as a ResultReady event, read a camera's latest result from its
variables, fetch a result by id and release its handle.

    EIAD_OPCUA_PASSWORD=... python docs/examples/opcua_plc_client.py \\
        --url opc.tcp://station.plant.local:4840/eiad/ --user plc1 \\
        --server-cert state/opcua_pki/own/cert.der --pki plc_pki --parts 5

On its first run it makes the client's key and certificate in --pki and says where the
certificate is: copy it into the station's <pki_dir>/trusted/ and restart the station
(until then the server refuses the client: BadCertificateUntrusted). --server-cert is the
station's certificate (<pki_dir>/own/cert.der on the station), which the client pins.
The password comes from $EIAD_OPCUA_PASSWORD, never from the command line (shell history).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

NAMESPACE = "urn:eiad-edge:machine-vision"  # the station's opcua.namespace_uri (default)
APPLICATION_URI = "urn:example:plc-client"  # must match the client certificate's URI


async def own_certificate(pki: Path) -> tuple[Path, Path]:
    """The client's key and certificate in `pki`, made on first use."""
    pki.mkdir(parents=True, exist_ok=True)
    key, cert = pki / "client_key.pem", pki / "client_cert.der"
    if not cert.is_file():
        await setup_self_signed_certificate(
            key, cert, APPLICATION_URI, socket.gethostname(), [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "plc"}
        )
        print(f"made {cert}: copy it into the station's <pki_dir>/trusted/ and restart the station")
    return key, cert


class ResultEvents:
    """asyncua calls `event_notification` for each event; the fields wait in a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict] = asyncio.Queue()

    def event_notification(self, event) -> None:
        fields = event.get_event_props_as_fields_dict()
        self.queue.put_nowait({name: getattr(value, "Value", value) for name, value in fields.items()})


async def follow(url: str, user: str, password: str, server_cert: Path, pki: Path, parts: int, wait_s: float) -> int:
    key, cert = await own_certificate(pki)
    client = Client(url, timeout=10)
    client.application_uri = APPLICATION_URI
    client.set_user(user)
    client.set_password(password)
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        str(cert),
        str(key),
        server_certificate=str(server_cert),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    async with client:
        ns = await client.get_namespace_index(NAMESPACE)

        def node(path: str):
            return client.get_node(ua.NodeId(path, ns))

        state = await node("VisionSystem.VisionStateMachine.CurrentState").read_value()
        print(f"connected to {url}; the station is {state.Text}")
        # ResultReady events, raised by the vision system as each part is decided
        events = ResultEvents()
        subscription = await client.create_subscription(100, events)
        event_type = await client.nodes.base_event_type.get_child(f"{ns}:ResultReadyEventType")
        await subscription.subscribe_events(node("VisionSystem"), event_type)
        last = None
        for _ in range(parts):
            try:
                last = await asyncio.wait_for(events.queue.get(), wait_s)
            except asyncio.TimeoutError:
                print(f"no result within {wait_s:.0f} s: is a camera delivering parts?", file=sys.stderr)
                return 1
            print(
                f"{last['CameraId']} #{last['Sequence']} {last['Verdict']} score {last['Score']:.3f} "
                f"class {last['DefectClass'] or '-'} regions {last['RegionCount']} id {last['ResultId']}"
            )
        if last is None:
            return 0
        # the same camera's latest result, as a PLC that polls instead of subscribing reads it
        camera = last["CameraId"]
        verdict = await node(f"VisionSystem.Cameras.{camera}.Verdict").read_value()
        sequence = await node(f"VisionSystem.Cameras.{camera}.Sequence").read_value()
        print(f"{camera} latest: #{sequence} {verdict}")
        # one result by id: the whole result as JSON, held under a handle until released
        management = node("VisionSystem.ResultManagement")
        content, handle, error = await management.call_method(
            ua.NodeId("VisionSystem.ResultManagement.GetResultById", ns),
            last["ResultId"],
            ua.Variant(0, ua.VariantType.Int32),
        )
        if error != 0:
            print(f"GetResultById {last['ResultId']}: error {error}", file=sys.stderr)
            return 1
        result = json.loads(content)
        print(f"GetResultById {last['ResultId']}: {result['Verdict']} score {result['Score']:.3f}, handle {handle}")
        released = await management.call_method(
            ua.NodeId("VisionSystem.ResultManagement.ReleaseResultHandle", ns),
            ua.Variant(handle, ua.VariantType.UInt32),
        )
        print(f"ReleaseResultHandle {handle}: error {released}")
        await subscription.delete()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the station's endpoint, opc.tcp://<host>:<port>/eiad/")
    parser.add_argument("--user", required=True, help="a user of the station's opcua.users")
    parser.add_argument("--server-cert", type=Path, required=True, help="the station's <pki_dir>/own/cert.der")
    parser.add_argument("--pki", type=Path, default=Path("plc_pki"), help="the client's key and certificate")
    parser.add_argument("--parts", type=int, default=5, help="results to follow before fetching the last by id")
    parser.add_argument("--wait-s", type=float, default=30.0, help="longest wait for one result")
    args = parser.parse_args(argv)
    password = os.environ.get("EIAD_OPCUA_PASSWORD")
    if not password:
        parser.error("set EIAD_OPCUA_PASSWORD to the user's password")
    return asyncio.run(follow(args.url, args.user, password, args.server_cert, args.pki, args.parts, args.wait_s))


if __name__ == "__main__":
    sys.exit(main())
