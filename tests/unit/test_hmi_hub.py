"""The page's update hub: a browser that does not read loses its oldest updates, nothing grows."""

from __future__ import annotations

import asyncio
import time

from edge.hmi.history import History
from edge.hmi.live import Hub, LiveFeed
from tests.support_hmi.page import part, settings, wait_for


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


class RecordingHub:
    """Stands in for the browsers' hub: records what the writer pushes, with when."""

    clients = 1
    dropped = 0

    def __init__(self) -> None:
        self.pushed: list[tuple[float, str, dict]] = []

    def publish(self, kind: str, data: dict) -> None:
        self.pushed.append((time.monotonic(), kind, data))


def test_ok_parts_reach_browsers_at_most_live_ok_hz_ng_at_once_and_the_newest_ok_is_not_lost(tmp_path):
    # given the page's feed with OK parts limited to 5 pushes a second per camera
    hub = RecordingHub()
    feed = LiveFeed(settings(tmp_path, live_ok_hz=5.0), History(tmp_path / "hmi", 1000), hub)
    try:
        # when 30 OK parts, then one NG part, then 5 more OK parts arrive within ~0.4 s
        parts = [part("OK") for _ in range(30)] + [part("NG")] + [part("OK") for _ in range(5)]
        for result, image in parts:
            feed.handle(result, image)
            time.sleep(0.01)
        last_ok = parts[-1][0].inspection_id
        wait_for(lambda: any(data["inspection_id"] == last_ok for _, _, data in hub.pushed), timeout_s=3.0)
    finally:
        feed.close()
    # then every part is in the history, but far fewer OK parts were pushed
    assert feed.stats()["written"] == 36
    ok_pushes = [(t, d) for t, kind, d in hub.pushed if d.get("verdict") == "OK"]
    assert 2 <= len(ok_pushes) <= 5
    assert all(b[0] - a[0] >= 0.19 for a, b in zip(ok_pushes, ok_pushes[1:]))  # at most 5 a second
    # and the NG part went out at once, the newest OK part still reached the page
    ng = parts[30][0].inspection_id
    assert [d["inspection_id"] for _, _, d in hub.pushed if d.get("verdict") == "NG"] == [ng]
    assert ok_pushes[-1][1]["inspection_id"] == last_ok
