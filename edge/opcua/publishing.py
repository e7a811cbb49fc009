"""How the server's subscriptions publish: ResultReady events go out as they are raised; the
publishing cycle, which only carries keep-alives and data changes, runs no faster than a floor.

Why. asyncua (2.1) publishes a subscription's notifications on a timer: every publishing
interval the client asked for, it wakes the subscription to look for something to send. A
PLC asking for 10 ms made the server's process wake 100 times a second per subscription, most
of its CPU time on a 2-core box, and an event waited up to one interval for the next wake-up.
So:
- `floor_publishing_interval`: a subscription created with a shorter interval than
  `min_publishing_interval_ms` is revised up to it (the client sees the revised interval in
  its CreateSubscription response, as OPC 10000-4 5.13.2 lets a server do);
- `push_events`: after raising an event, every subscription holding events publishes at once
  (asyncua's own `publish_results`: it takes a publish request the client has queued, or
  waits for the client's next one, as the timer would).
Keep-alives, lifetime counting and acknowledgements stay asyncua's (a push that finds no
publish request queued does not count as a cycle).

Both reach into asyncua's server internals (`iserver.subscription_service`, a subscription's
queued events): tests/integration/test_opcua_server.py checks the revised interval and that
every event still arrives, so an asyncua upgrade that moves them fails there, not on a line.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def floor_publishing_interval(server, min_interval_ms: float) -> None:
    """Revise every new subscription's publishing interval up to `min_interval_ms` (0: as asked)."""
    service = server.iserver.subscription_service
    create = service.create_subscription

    async def create_with_floor(params, *args, **kwargs):
        if params.RequestedPublishingInterval < min_interval_ms:
            log.debug(
                "OPC UA: publishing interval %.1f ms asked, %.1f ms granted (events are sent as raised)",
                params.RequestedPublishingInterval,
                min_interval_ms,
            )
            params.RequestedPublishingInterval = float(min_interval_ms)
        return await create(params, *args, **kwargs)

    service.create_subscription = create_with_floor


async def push_events(server) -> None:
    """Publish now every subscription that holds raised events (a client with no publish request
    queued gets them with its next request, or at the next cycle)."""
    for subscription in list(server.iserver.subscription_service.subscriptions.values()):
        if getattr(subscription, "_triggered_events", None):
            counts = (subscription._publish_cycles_count, subscription._keep_alive_count)
            if not await subscription.publish_results():
                # Nothing went out (no publish request queued): asyncua counted the attempt as a
                # publishing cycle. It was not one; undone, so lifetimes and keep-alives still
                # count revised intervals, not events.
                subscription._publish_cycles_count, subscription._keep_alive_count = counts
