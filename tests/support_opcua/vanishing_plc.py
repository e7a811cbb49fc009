"""A PLC that subscribes to ResultReady events, says so on stdout, and then waits to be
killed mid-subscription (no goodbye to the server).

    python -m tests.support_opcua.vanishing_plc URL PASSWORD KEY CERT SERVER_CERT
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.support_opcua.plc import EventLog, connected


async def _subscribe_and_wait(url: str, password: str, key: str, cert: str, server_cert: str) -> None:
    async with connected(url, password, Path(key), Path(cert), Path(server_cert)) as (client, idx):
        subscription = await client.create_subscription(10, EventLog())
        event_type = await client.nodes.base_event_type.get_child(f"{idx}:ResultReadyEventType")
        await subscription.subscribe_events(client.nodes.server, event_type)
        print("subscribed", flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(_subscribe_and_wait(*sys.argv[1:6]))
