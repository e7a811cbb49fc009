"""The operator's page: uvicorn on its own thread and event loop.

`start_hmi` builds the history, the review tree, the sink that feeds them and the web
server, in the process that calls it: the page's own process when a station runs it
(edge/hmi/process.py), a test's process in the page's tests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.hmi.feedback import Review
from edge.hmi.history import History
from edge.hmi.live import Hub, LiveFeed
from edge.hmi.settings import HmiSettings
from eiad.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class HmiServer:
    feed: LiveFeed
    url: str
    _server: object
    _thread: threading.Thread

    def close(self) -> None:
        """Stop serving (open event streams end), then store what the sink still holds."""
        self._server.should_exit = True
        self._thread.join(timeout=10.0)
        self.feed.close()


def start_hmi(
    settings: HmiSettings,
    resolve: Callable[[Path], Path],
    line: str,
    health: Callable[[], dict],
    about: dict,
) -> HmiServer:
    """Start the page; returns once it accepts connections. `resolve` makes config paths absolute."""
    import uvicorn

    from edge.hmi.app import build_app

    history = History(resolve(settings.data_dir), settings.history_max_items, settings.ok_pictures_kept)
    feed = LiveFeed(settings, history, Hub(settings.client_queue, settings.max_clients))
    try:
        app = build_app(settings, feed, Review(resolve(settings.review_dir), line, history), health, about)
    except ValueError as error:  # a user's hash from the environment is missing or malformed
        feed.close()
        raise ConfigError(f"hmi.users: {error}") from None
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="hmi-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10.0
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        feed.close()
        raise ConfigError(
            f"the operator page could not listen on {settings.host}:{settings.port} "
            "(port in use? set hmi.port to a free one)"
        )
    port = server.servers[0].sockets[0].getsockname()[1]
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{host}:{port}/"
    log.info("operator page on %s (%d user(s))", url, len(settings.users))
    return HmiServer(feed, url, server, thread)
