"""Fixtures shared by every test folder: a real Mosquitto started per test on a free port."""

from __future__ import annotations

import pytest

from tests.support.mosquitto import Mosquitto, mosquitto_available


@pytest.fixture
def mosquitto_factory(tmp_path):
    """Build brokers: `mosquitto_factory(persistence=True, users={"u": "pw"})`; all are
    stopped at teardown. Fails (not skips) when Mosquitto is missing: .ci/run installs it."""
    if not mosquitto_available():
        pytest.fail("mosquitto is not installed: apt-get install mosquitto (.ci/run does this)")
    brokers: list[Mosquitto] = []

    def make(**kwargs) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"broker{len(brokers)}", **kwargs).start()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.kill()


@pytest.fixture
def mosquitto(mosquitto_factory) -> Mosquitto:
    """A running broker with persistence, anonymous access, on 127.0.0.1:<free port>."""
    return mosquitto_factory(persistence=True)
