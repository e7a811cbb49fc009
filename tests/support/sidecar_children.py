"""Children for the sidecar tests (module level: a spawned process imports its target)."""

from __future__ import annotations

import time


def stuck(child) -> None:
    """Says it is ready, then never reads an item (a hung page or server)."""
    child.ready("stuck")
    time.sleep(3600)


def echo(child) -> None:
    """Counts the items it gets and asks the station one question per item."""
    child.ready("echo")
    count = 0
    answers = []
    for item in child.items():
        count += 1
        answers.append(child.ask("double", item))
        child.set_counters([count, sum(answers)])


def refuses(child) -> None:
    child.failed("port 8080 is in use: set hmi.port to a free one")
