"""The page's update hub: a browser that does not read loses its oldest updates, nothing grows."""

from __future__ import annotations

import asyncio

from edge.hmi.live import Hub


def test_a_slow_browser_keeps_only_its_newest_updates_and_the_loss_is_counted():
    async def scenario():
        hub = Hub(client_queue=3, max_clients=2)
        hub.attach(asyncio.get_running_loop())
        slow, fast = hub.join(), hub.join()
        assert hub.join() is None  # max_clients reached: a third page is refused
        got = []
        for n in range(10):
            hub.publish("result", {"n": n})  # as from the writer thread: scheduled on the loop
            await asyncio.sleep(0)
            got.append((await fast.get())[1]["n"])
        await asyncio.sleep(0)
        assert got == list(range(10))
        assert [slow.get_nowait()[1]["n"] for _ in range(slow.qsize())] == [7, 8, 9]
        assert hub.dropped == 7
        hub.leave(slow)
        assert hub.clients == 1 and hub.join() is not None

    asyncio.run(scenario())


def test_publishing_without_a_loop_or_browsers_is_a_no_op():
    hub = Hub(client_queue=3, max_clients=2)
    hub.publish("result", {"n": 1})  # the page has not started: nothing to deliver, no error
    assert hub.dropped == 0
