"""Clients of the station's own servers for benchmarks/server_cost.py, each run in a
process of its own: browsers of the operator page and PLCs of the OPC UA server.

On a line these clients are other machines (operators' PCs, PLCs); here they share the
box's cores, so they run in Linux's idle scheduling class (SCHED_IDLE: a core only when
no ordinary task wants it) and take the time the station leaves, not the station's. What
they still cost (memory bandwidth, caches, the kernel's network stack) is counted against
the server they use.
"""

from __future__ import annotations

import json
import threading
import time

from edge.sidecar import lower_priority

USER, PASSWORD = "bench", "bench-password-1"
PLC_URI = "urn:eiad-bench:plc"


def _browser(url: str, stop, counts) -> None:
    """One page's traffic, until `stop`; counts events and pictures fetched."""
    import http.client
    import urllib.request

    base = url.rstrip("/")
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    login = urllib.request.Request(
        base + "/api/login",
        data=json.dumps({"user": USER, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with opener.open(login, timeout=10) as response:
        cookie = response.headers["Set-Cookie"].split(";")[0]
    host, port = base.split("//")[1].split(":")
    stream = http.client.HTTPConnection(host, int(port), timeout=30)
    stream.request("GET", "/api/events", headers={"Cookie": cookie})
    events = stream.getresponse()

    def get(path: str) -> None:
        request = urllib.request.Request(base + path, headers={"Cookie": cookie})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
        except OSError:
            pass

    last_picture = last_health = last_history = 0.0
    while not stop.is_set():
        line = events.fp.readline()
        if not line:
            break
        if not line.startswith(b"data: "):
            continue
        with counts.get_lock():
            counts[0] += 1
        now = time.monotonic()
        data = json.loads(line[6:])
        if "verdict" in data and now - last_picture >= 0.25:
            get(f"/media/{data['inspection_id']}/image")
            if data.get("mask"):
                get(f"/media/{data['inspection_id']}/overlay")
            with counts.get_lock():
                counts[1] += 1
            last_picture = now
        if now - last_health >= 2.0:
            get("/api/health")
            last_health = now
        if now - last_history >= 10.0:
            get("/api/history?limit=50")
            last_history = now
    stream.close()


def _like_another_machine() -> None:
    lower_priority("idle")


def browsers_process(url: str, n: int, stop, counts) -> None:
    _like_another_machine()
    threads = [threading.Thread(target=_browser, args=(url, stop, counts), daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(timeout=5)


def plcs_process(endpoint: str, n: int, pki: str, stop, counts, latencies) -> None:
    """N OPC UA clients subscribed to ResultReady events until `stop`; verdict -> event ms out."""
    import asyncio

    _like_another_machine()

    from asyncua import Client, ua
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

    arrivals: list[float] = []

    class Handler:
        def event_notification(self, event) -> None:
            fields = event.get_event_props_as_fields_dict()
            capture = fields["CaptureTime"].Value.timestamp()
            verdict_ms = float(fields["LatencyMs"].Value)
            arrivals.append((time.time() - capture) * 1000.0 - verdict_ms)
            with counts.get_lock():
                counts[0] += 1

    async def one(k: int) -> None:
        client = Client(endpoint, timeout=10)
        client.application_uri = PLC_URI
        client.set_user(USER)
        client.set_password(PASSWORD)
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            f"{pki}/plc_cert.der",
            f"{pki}/plc_key.pem",
            server_certificate=f"{pki}/own/cert.der",
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
        async with client:
            idx = await client.get_namespace_index("urn:eiad-edge:machine-vision")
            etype = await client.nodes.base_event_type.get_child(f"{idx}:ResultReadyEventType")
            subscription = await client.create_subscription(10, Handler())
            await subscription.subscribe_events(client.nodes.server, etype)
            with counts.get_lock():
                counts[1] += 1
            while not stop.is_set():
                await asyncio.sleep(0.1)

    async def all_clients() -> None:
        await asyncio.gather(*(one(k) for k in range(n)))

    asyncio.run(all_clients())
    latencies.put(arrivals)
