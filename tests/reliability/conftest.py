"""Fixtures for the reliability campaigns (brokers come from tests/conftest.py): a recording subscriber,
sink settings with short reconnect delays, and TLS material made with openssl."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.stand_ins.subscriber import Subscriber
from edge.sinks.mqtt.config import MqttSettings
from tests.support.mosquitto import make_ca, openssl


def sink_settings(port: int, **overrides) -> MqttSettings:
    """Station st1 on line l1, reconnecting fast (faults last seconds here, not minutes)."""
    base = dict(
        port=port, line="l1", station="st1", reconnect_min_delay_s=0.1, reconnect_max_delay_s=0.5, close_timeout_s=3.0
    )
    return MqttSettings(**{**base, **overrides})


@pytest.fixture
def subscriber_factory():
    """`subscriber_factory(port, "eiad/l1/#", **kw)`: a persistent-session QoS 1 subscriber,
    waited until subscribed; all closed at teardown. With `username=`, `password=`,
    `client_id=` (and `ca_file=`) it logs in."""
    subs: list[Subscriber] = []

    def make(port: int, topic_filter: str = "eiad/l1/st1/#", **kwargs):
        sub = Subscriber(port, topic_filter, **kwargs)
        assert sub.subscribed.wait(5), "the test subscriber could not subscribe"
        subs.append(sub)
        return sub

    yield make
    for sub in subs:
        sub.close()


def make_client_cert(tls_dir: Path, name: str) -> tuple[Path, Path]:
    """A client certificate (CN=`name`) signed by the CA in `tls_dir` (from make_tls_files)."""
    openssl(
        tls_dir,
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
    )
    openssl(
        tls_dir,
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        f"{name}.crt",
    )
    return tls_dir / f"{name}.crt", tls_dir / f"{name}.key"


def make_other_ca(directory: Path) -> Path:
    """A CA that signed nothing the broker uses (a station pointed at the wrong trust root)."""
    return make_ca(directory, "other", "impostor-ca")
