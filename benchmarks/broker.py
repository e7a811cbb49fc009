"""The broker a benchmark publishes to: a private Mosquitto by default, the station's own
with `--broker config`.

Why private by default: a benchmark should neither disturb the plant's broker nor be
disturbed by its other clients, and its result should be reproducible on any box with
Mosquitto installed. The private one is the project's launcher (edge/sinks/mqtt/broker.py) in a
temporary folder, without persistence or a per-message log (disk I/O would be measured).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edge.sinks.mqtt.broker import Mosquitto
from eiad.errors import ConfigError


@contextlib.contextmanager
def private_broker() -> Iterator[Mosquitto]:
    """A private Mosquitto on a free loopback port for the duration of the block."""
    with tempfile.TemporaryDirectory(prefix="eiad-bench-broker-") as tmp:
        broker = Mosquitto(Path(tmp), persistence=False, log_all=False)
        if broker.binary is None:
            raise ConfigError(
                "Mosquitto is not installed: apt-get install mosquitto, "
                "or pass --broker config to use the station's broker"
            )
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


def broker_for_run(stack, broker: str, mqtt, config_path) -> tuple[str, int]:
    """(host, port) a benchmark publishes to: a private broker entered on `stack` for 'private',
    else the station's `mqtt:` broker ('config'), which the config must then have."""
    if broker == "private":
        return "127.0.0.1", stack.enter_context(private_broker()).port
    if mqtt is None:
        raise ConfigError(f"{config_path}: --broker config needs an mqtt: section")
    return mqtt.host, mqtt.port
