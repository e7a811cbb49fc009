"""Nobody in: a real Mosquitto configured here with TLS (a CA and certificates made with
openssl), a password file and an ACL; secrets kept out of logs; the station takes no MQTT
input but explanation requests, and only when enabled; and static checks over the
repository's Python for unsafe loading and shells."""

from __future__ import annotations

import ast
import json
import logging
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from benchmarks.stand_ins.results import make_result
from edge.sinks.mqtt.config import OutboxSettings, TlsSettings
from edge.sinks.mqtt.outbox.store import Outbox
from edge.sinks.mqtt.sink import MqttSink
from tests.reliability.conftest import make_client_cert, make_other_ca, sink_settings
from tests.support.mosquitto import make_tls_files

REPO = Path(__file__).resolve().parents[2]
STATION_PW = "S3cr3t-st1-0xC0FFEE"  # distinctive: searched for in every log below
PLC_PW = "plc-Pa55-word"
ACL = "user st1\ntopic write eiad/l1/st1/#\n\nuser plc\ntopic read eiad/#\n"


@pytest.fixture
def secure(mosquitto_factory, tmp_path):
    """A TLS-only broker with passwords and an ACL; returns (broker, tls files)."""
    tls = make_tls_files(tmp_path / "tls")
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    broker = mosquitto_factory(
        persistence=False, users={"st1": STATION_PW, "plc": PLC_PW}, tls=tls, extra_conf=f"acl_file {acl}\n"
    )
    return broker, tls


def station(broker, tls, tmp_path, password: str = STATION_PW, station_name: str = "st1", ca=None, **tls_kw):
    settings = sink_settings(
        broker.port,
        station=station_name,
        username="st1",
        password_env="EIAD_MQTT_PASSWORD",
        tls=TlsSettings(ca_file=ca or tls.ca_file, **tls_kw),
    )
    return MqttSink(
        settings,
        Outbox(OutboxSettings(path=tmp_path / f"{station_name}-{time.monotonic_ns()}.db")),
        environ={"EIAD_MQTT_PASSWORD": password},
    )


def plc(subscriber_factory, broker, tls, topic="eiad/#"):
    return subscriber_factory(broker.port, topic, username="plc", password=PLC_PW, client_id="plc", ca_file=tls.ca_file)


def wait_stats(sink, predicate, timeout_s: float = 8.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate(sink.stats()):
        time.sleep(0.05)
    return sink.stats()


@pytest.mark.mqtt
def test_the_right_credentials_over_verified_tls_deliver(secure, subscriber_factory, tmp_path):
    broker, tls = secure
    sub = plc(subscriber_factory, broker, tls, "eiad/l1/st1/verdict")
    sink = station(broker, tls, tmp_path)
    for seq in range(1, 6):
        sink.handle(make_result(seq, "OK"))
    assert sink.flush(10), sink.stats()
    assert sub.wait_for(lambda m: len(m) >= 5, 5)
    assert [json.loads(m.payload)["sequence"] for m in sub.snapshot()] == [1, 2, 3, 4, 5]
    sink.close()


@pytest.mark.mqtt
def test_a_wrong_password_is_refused_and_nothing_gets_through(secure, subscriber_factory, tmp_path):
    broker, tls = secure
    sub = plc(subscriber_factory, broker, tls)
    sink = station(broker, tls, tmp_path, password="guess")
    sink.handle(make_result(1, "NG"))
    stats = wait_stats(sink, lambda s: s["connect_refusals"] >= 1)
    assert stats["connect_refusals"] >= 1 and stats["last_refusal_code"] in (0x86, 0x87), stats
    assert not stats["connected"] and stats["outbox_depth_rows"] == 2  # kept for when it is fixed
    time.sleep(0.3)
    assert sub.snapshot("/verdict") == []
    sink.close()


@pytest.mark.mqtt
def test_the_station_cannot_publish_outside_its_acl(secure, subscriber_factory, tmp_path):
    # given st1's credentials used by a station configured as st2, and a raw client as st1
    broker, tls = secure
    sub = plc(subscriber_factory, broker, tls)
    impostor = station(broker, tls, tmp_path, station_name="st2")
    for seq in range(1, 4):
        impostor.handle(make_result(seq, "NG", station="st2"))
    impostor.flush(5)
    raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="raw-st1", protocol=mqtt.MQTTv5)
    raw.username_pw_set("st1", STATION_PW)
    raw.tls_set(ca_certs=str(tls.ca_file))
    raw.connect("127.0.0.1", broker.port)
    raw.loop_start()
    for topic in ("eiad/l1/st9/verdict", "eiad/l2/st1/verdict", "plc/l1/reject_gate", "eiad/l1/st1x/verdict"):
        raw.publish(topic, b'{"verdict": "OK"}', qos=1).wait_for_publish(5)
    allowed = raw.publish("eiad/l1/st1/verdict", b'{"probe": true}', qos=1)
    allowed.wait_for_publish(5)
    # then only the allowed topic reaches the subscriber; the foreign ones never do
    assert sub.wait_for(lambda m: any(x.topic == "eiad/l1/st1/verdict" for x in m), 5)
    time.sleep(0.3)
    assert {m.topic for m in sub.snapshot() if "status" not in m.topic} == {"eiad/l1/st1/verdict"}
    assert not any("/st2/" in m.topic for m in sub.snapshot())
    raw.loop_stop()
    raw.disconnect()
    impostor.close()


@pytest.mark.mqtt
def test_a_broker_certificate_from_another_ca_is_refused(secure, subscriber_factory, tmp_path):
    broker, tls = secure
    sub = plc(subscriber_factory, broker, tls)
    sink = station(broker, tls, tmp_path, ca=make_other_ca(tmp_path / "other"))
    sink.handle(make_result(1, "OK"))
    time.sleep(1.5)  # several reconnect attempts
    stats = sink.stats()
    assert stats["connects"] == 0 and not stats["connected"] and stats["outbox_depth_rows"] == 1, stats
    assert sub.snapshot("/verdict") == []
    assert "certificate verify failed" in broker.log_text() or "error" in broker.log_text().lower()
    sink.close()


@pytest.mark.mqtt
def test_mutual_tls_needs_a_client_certificate_from_the_plant_ca(mosquitto_factory, subscriber_factory, tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    cert, key = make_client_cert(tmp_path / "tls", "st1")
    broker = mosquitto_factory(persistence=False, tls=tls, extra_conf="require_certificate true\n")
    without = MqttSink(
        sink_settings(broker.port, tls=TlsSettings(ca_file=tls.ca_file)), Outbox(OutboxSettings(path=tmp_path / "a.db"))
    )
    with_cert = MqttSink(
        sink_settings(broker.port, station="st2", tls=TlsSettings(ca_file=tls.ca_file, cert_file=cert, key_file=key)),
        Outbox(OutboxSettings(path=tmp_path / "b.db")),
    )
    assert wait_stats(with_cert, lambda s: s["connected"])["connected"]
    time.sleep(0.5)
    assert without.stats()["connects"] == 0
    without.close()
    with_cert.close()


@pytest.mark.mqtt
def test_secrets_never_appear_in_logs_stats_or_the_outbox(secure, subscriber_factory, tmp_path, caplog, capfd):
    # given every logger at DEBUG (paho's included) while the station connects, is refused, fails TLS
    broker, tls = secure
    caplog.set_level(logging.DEBUG)
    good = station(broker, tls, tmp_path)
    bad = station(broker, tls, tmp_path, password=STATION_PW[::-1])
    wrong_ca = station(broker, tls, tmp_path, ca=make_other_ca(tmp_path / "other"))
    for sink in (good, bad, wrong_ca):
        sink.handle(make_result(1, "NG"))
    good.flush(5)
    wait_stats(bad, lambda s: s["connect_refusals"] >= 1)
    stats = [json.dumps(s.stats(), default=str) for s in (good, bad, wrong_ca)]
    for sink in (good, bad, wrong_ca):
        sink.close()
    out, err = capfd.readouterr()
    # then neither password appears anywhere a person or a log shipper could read it
    for secret in (STATION_PW, STATION_PW[::-1]):
        assert secret not in caplog.text
        assert secret not in out + err
        assert all(secret not in s for s in stats)
        for db in tmp_path.glob("*.db*"):
            assert secret.encode() not in db.read_bytes(), db
    assert "refused the connection" in caplog.text  # the logs did say what went wrong


@pytest.mark.mqtt
def test_the_station_subscribes_to_nothing_by_default_and_only_to_explain_requests_when_enabled(
    mosquitto_factory, tmp_path
):
    # given a running station and an attacker on the plant network
    broker = mosquitto_factory(persistence=False)
    sink = MqttSink(sink_settings(broker.port), Outbox(OutboxSettings(path=tmp_path / "o.db")))
    assert wait_stats(sink, lambda s: s["connected"])["connected"]
    before = sink.stats()
    attacker = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="attacker", protocol=mqtt.MQTTv5)
    attacker.connect("127.0.0.1", broker.port)
    attacker.loop_start()
    hostile = [
        b"{not json",
        b"\x00" * 200_000,
        json.dumps({"command": "set_threshold", "image_score": 1.0}).encode(),
        json.dumps({"command": "explain", "inspection_id": 12}).encode(),
        b'{"command": "shutdown"}',
    ]
    topics = ("eiad/l1/st1/command", "eiad/l1/st1/explain/request", "eiad/l1/st1/#", "eiad/l1/st1/status")

    def attack() -> None:
        for topic in topics:
            for payload in hostile:
                attacker.publish(topic.replace("#", "x"), payload, qos=1).wait_for_publish(5)
        time.sleep(0.3)

    attack()
    # then the broker log shows no SUBSCRIBE from the station: by default it accepts no MQTT input
    log_text = broker.log_text()
    assert "Received SUBSCRIBE from eiad-l1-st1" not in log_text and "Received SUBSCRIBE from attacker" not in log_text
    assert "Received PUBLISH from attacker" in log_text  # the attack did reach the broker
    after = sink.stats()
    assert after["connected"] and after["disconnects"] == before["disconnects"] == 0
    assert after.get("messages_received", 0) == 0
    # when explanation requests are enabled (explainer.mqtt_requests: the app calls subscribe())
    received: list[bytes] = []
    sink.subscribe("eiad/l1/st1/explain/request", received.append)
    time.sleep(0.3)
    attack()
    # then the station subscribed to exactly that one topic, and only its payloads reach the handler
    subscribe_lines = [line for line in broker.log_text().splitlines() if "eiad/l1/st1/" in line and "(QoS" in line]
    assert subscribe_lines and all("eiad/l1/st1/explain/request (QoS 1)" in line for line in subscribe_lines)
    assert (
        received == hostile
    )  # the handler (edge/explainer/requests.py) validates them: tests/reliability/test_mqtt_inputs.py
    with pytest.raises(ValueError):
        sink.subscribe("eiad/l1/st1/#", received.append)  # never a wildcard
    sink.handle(make_result(1, "OK"))
    assert sink.flush(5)
    attacker.loop_stop()
    attacker.disconnect()
    sink.close()


# ---- static checks over the repository's Python --------------------------------------------
SCANNED = ("eiad", "edge", "train", "export", "benchmarks", "tests")


def python_files() -> list[Path]:
    return sorted(p for top in SCANNED for p in (REPO / top).rglob("*.py") if ".venv" not in p.parts)


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, why) for each call that can run code from data or from a config value."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        short = name.rsplit(".", 1)[-1]
        if name in (
            "pickle.load",
            "pickle.loads",
            "cPickle.load",
            "dill.load",
            "marshal.loads",
            "joblib.load",
            "pickle.Unpickler",
            "yaml.unsafe_load",
            "yaml.full_load",
            "yaml.unsafe_load_all",
        ):
            found.append((node.lineno, f"{name}: unpickles/unsafely loads data"))
        elif name == "torch.load" and not _is_true(_kw(node, "weights_only")):
            found.append((node.lineno, "torch.load without weights_only=True"))
        elif name in ("yaml.load", "yaml.load_all"):
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if _name(loader).rsplit(".", 1)[-1] not in ("SafeLoader", "CSafeLoader", "BaseLoader"):
                found.append((node.lineno, f"{name} without SafeLoader"))
        elif name in ("numpy.load", "np.load") and _is_true(_kw(node, "allow_pickle")):
            found.append((node.lineno, "np.load(allow_pickle=True)"))
        elif isinstance(node.func, ast.Name) and name in ("eval", "exec"):
            found.append((node.lineno, f"{name}()"))
        elif short in ("system", "popen") and name.startswith("os."):
            found.append((node.lineno, f"{name}: goes through a shell"))
        elif _is_true(_kw(node, "shell")) and node.args and not isinstance(node.args[0], ast.Constant):
            found.append((node.lineno, f"{name}(shell=True) with a built command line"))
    return found


def test_no_unsafe_loading_eval_or_shell_interpolation_anywhere():
    problems = []
    for path in python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        problems += [f"{path.relative_to(REPO)}:{line}: {why}" for line, why in unsafe_calls(tree)]
    assert not problems, "unsafe calls:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import pickle\npickle.loads(b)", "unpickles"),
        ("import torch\ntorch.load('w.pt')", "weights_only"),
        ("import torch\ntorch.load('w.pt', weights_only=False)", "weights_only"),
        ("import yaml\nyaml.load(text)", "SafeLoader"),
        ("import yaml\nyaml.load(text, Loader=yaml.FullLoader)", "SafeLoader"),
        ("eval(cfg['expr'])", "eval"),
        ("import subprocess\nsubprocess.run(f'ffmpeg -i {cfg.path}', shell=True)", "shell=True"),
        ("import os\nos.system('ls ' + folder)", "shell"),
        ("import numpy as np\nnp.load(p, allow_pickle=True)", "allow_pickle"),
    ],
)
def test_the_static_check_catches_each_unsafe_pattern(source, expected):
    # the checker itself must fail on what it is meant to catch (and pass the safe forms below)
    assert any(expected in why for _, why in unsafe_calls(ast.parse(source)))


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load('w.pt', weights_only=True)",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)\nyaml.safe_load(text)",
        "import subprocess\nsubprocess.run(['ffmpeg', '-i', path], check=True)",
        "import subprocess\nsubprocess.run('nvidia-smi', shell=True)",
    ],
)
def test_the_static_check_accepts_the_safe_forms(source):
    assert unsafe_calls(ast.parse(source)) == []
