"""The MQTT sink against a real Mosquitto: order, masks, status/will, broker and station
restarts, outbox bounds, credentials."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from benchmarks.stand_ins.results import make_result
from benchmarks.stand_ins.subscriber import Subscriber
from edge.sinks.mqtt.config import MqttSettings, OutboxSettings
from edge.sinks.mqtt.outbox.store import Outbox
from edge.sinks.mqtt.sink import MqttSink
from eiad.messages import ExplanationMessage

pytestmark = pytest.mark.mqtt
REPO = Path(__file__).resolve().parents[2]


def settings_for(port: int, **overrides) -> MqttSettings:
    base = dict(
        port=port, line="l1", station="st1", reconnect_min_delay_s=0.2, reconnect_max_delay_s=0.5, close_timeout_s=3.0
    )
    return MqttSettings(**{**base, **overrides})


def sequences(sub: Subscriber) -> list[int]:
    return [json.loads(m.payload)["sequence"] for m in sub.snapshot("/verdict")]


@pytest.fixture
def subscriber(mosquitto):
    sub = Subscriber(mosquitto.port, "eiad/l1/st1/#")
    assert sub.subscribed.wait(5), mosquitto.log_text()
    yield sub
    sub.close()


def test_every_verdict_once_in_order_with_masks_and_explanations(mosquitto, subscriber, tmp_path):
    # given a connected sink
    sink = MqttSink(settings_for(mosquitto.port), Outbox(OutboxSettings(path=tmp_path / "o.db")))
    results = [make_result(i, "NG" if i % 3 == 0 else "OK", shape=(48, 80)) for i in range(1, 41)]
    # when 40 results and an explanation for one NG part are handled
    for r in results:
        sink.handle(r)
    meta = {"model": "tiny-q4", "tokens": 7, "consistent": False, "disagreements": "class,location"}
    sink.handle_explanation("st1-000003", "a scratch near the top edge", meta)
    assert sink.flush(10)
    assert subscriber.wait_for(lambda m: len([x for x in m if x.topic.endswith("/verdict")]) >= 40)
    assert subscriber.wait_for(lambda m: any(x.topic.endswith("/explanation") for x in m))
    # then each verdict arrived exactly once, in order
    assert sequences(subscriber) == list(range(1, 41))
    # and each NG part has a PNG mask of the frame size, typed and tagged with its id
    masks = subscriber.snapshot("/mask")
    assert len(masks) == 13
    for m in masks:
        image = cv2.imdecode(np.frombuffer(m.payload, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image.shape == (48, 80) and int(image.max()) == 255
        assert m.properties["ContentType"] == "image/png"
        assert dict(m.properties["UserProperty"])["inspection_id"].startswith("st1-")
    assert [dict(m.properties["UserProperty"])["inspection_id"] for m in masks][0] == "st1-000003"
    explanation = json.loads(subscriber.snapshot("/explanation")[0].payload)
    assert explanation["inspection_id"] == "st1-000003" and explanation["meta"]["tokens"] == 7
    # the checker's verdict travels as fields of its own, valid against the published schema
    assert explanation["consistent"] is False and explanation["disagreements"] == ["class", "location"]
    assert "consistent" not in explanation["meta"]
    ExplanationMessage.model_validate(explanation)
    stats = sink.stats()
    assert stats["acked"] == 40 + 13 + 1 and stats["outbox_depth_rows"] == 0
    assert stats["publish_latency_ms"]["p50"] > 0
    # and stats publish on demand
    assert sink.publish_stats({"fps": 25.0})
    assert subscriber.wait_for(lambda m: any(x.topic.endswith("/stats") for x in m))
    assert json.loads(subscriber.snapshot("/stats")[0].payload)["pipeline"] == {"fps": 25.0}
    sink.close()


def test_status_is_retained_online_and_the_will_says_offline_when_killed(mosquitto, tmp_path):
    # given a station process that connected and published
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.station_process",
            "--port",
            str(mosquitto.port),
            "--outbox",
            str(tmp_path / "o.db"),
            "--count",
            "3",
            "--wait-connected",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "stored"
        assert proc.stdout.readline().strip() == "flushed"
        # when a late subscriber connects, the retained status says online
        late = Subscriber(mosquitto.port, "eiad/l1/st1/status", client_id="late")
        assert late.wait_for(lambda m: len(m) >= 1)
        first = late.snapshot()[0]
        assert first.retain and json.loads(first.payload)["state"] == "online"
        # when the station dies without DISCONNECT (SIGKILL closes its socket)
        proc.kill()
        proc.wait(5)
        # then the broker publishes the last will: offline
        assert late.wait_for(lambda m: any(json.loads(x.payload)["state"] == "offline" for x in m))
        late.close()
        # and it is retained for anyone who looks later
        later = Subscriber(mosquitto.port, "eiad/l1/st1/status", client_id="later")
        assert later.wait_for(lambda m: len(m) >= 1)
        assert json.loads(later.snapshot()[0].payload)["state"] == "offline"
        later.close()
    finally:
        proc.kill()
        proc.wait(5)


def test_broker_stopped_mid_run_loses_no_verdict(mosquitto, subscriber, tmp_path):
    sink = MqttSink(settings_for(mosquitto.port), Outbox(OutboxSettings(path=tmp_path / "o.db")))
    for i in range(1, 21):
        sink.handle(make_result(i, "OK"))
    assert sink.flush(10)
    # when the broker goes away while the line keeps producing
    mosquitto.stop()
    for i in range(21, 51):
        sink.handle(make_result(i, "NG" if i % 5 == 0 else "OK"))
    assert sink.stats()["outbox_depth_rows"] >= 30
    # and comes back
    mosquitto.start()
    for i in range(51, 61):
        sink.handle(make_result(i, "OK"))
    assert sink.flush(15), sink.stats()
    assert subscriber.wait_for(
        lambda m: set(range(1, 61)) <= {json.loads(x.payload)["sequence"] for x in m if x.topic.endswith("/verdict")},
        15,
    )
    # then nothing is missing and the order of first arrivals is kept; duplicates are counted
    seqs = sequences(subscriber)
    first_seen = list(dict.fromkeys(seqs))
    assert first_seen == list(range(1, 61))
    duplicates = sum(n - 1 for n in Counter(seqs).values())
    assert duplicates <= 60
    stats = sink.stats()
    assert stats["disconnects"] >= 1 and stats["connects"] >= 2
    sink.close()


def test_station_restart_replays_unsent_rows_in_order(mosquitto, subscriber, tmp_path):
    outbox_path = tmp_path / "o.db"
    # given a station that stored 20 results while the broker was down, then stopped
    mosquitto.stop()
    first = MqttSink(settings_for(mosquitto.port, close_timeout_s=0.3), Outbox(OutboxSettings(path=outbox_path)))
    for i in range(1, 21):
        first.handle(make_result(i, "OK"))
    first.close()
    # when the broker is back and a new station process opens the same outbox
    mosquitto.start()
    second = MqttSink(settings_for(mosquitto.port), Outbox(OutboxSettings(path=outbox_path)))
    for i in range(21, 26):
        second.handle(make_result(i, "OK"))
    assert second.flush(15), second.stats()
    assert subscriber.wait_for(lambda m: len([x for x in m if x.topic.endswith("/verdict")]) >= 25)
    # then the backlog is replayed oldest first, before the new results
    assert sequences(subscriber) == list(range(1, 26))
    assert second.stats()["replayed"] == 20
    second.close()


def test_sigkilled_station_loses_no_stored_verdict(mosquitto, subscriber, tmp_path):
    outbox_path = tmp_path / "o.db"
    # given a station process killed with results stored while the broker was down
    mosquitto.stop()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.station_process",
            "--port",
            str(mosquitto.port),
            "--outbox",
            str(outbox_path),
            "--count",
            "15",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "stored"
    proc.kill()
    proc.wait(5)
    # when the station restarts after the broker is back
    mosquitto.start()
    sink = MqttSink(settings_for(mosquitto.port), Outbox(OutboxSettings(path=outbox_path)))
    assert sink.flush(15)
    # then every stored verdict arrives, in order
    assert subscriber.wait_for(lambda m: len([x for x in m if x.topic.endswith("/verdict")]) >= 15)
    assert sequences(subscriber) == list(range(1, 16))
    sink.close()


def test_outbox_bound_policy_is_counted_exactly(mosquitto, subscriber, tmp_path):
    # given a 10-row outbox that drops the oldest rows, and no broker
    mosquitto.stop()
    box = Outbox(OutboxSettings(path=tmp_path / "o.db", max_rows=10, policy="drop_oldest"))
    sink = MqttSink(settings_for(mosquitto.port), box)
    for i in range(1, 26):
        sink.handle(make_result(i, "OK"))
    # then exactly 15 drops are counted
    assert sink.stats()["dropped_by_reason"] == {"full_drop_oldest": 15}
    # and once the broker is back, exactly the newest ten arrive
    mosquitto.start()
    assert sink.flush(15)
    assert subscriber.wait_for(lambda m: len([x for x in m if x.topic.endswith("/verdict")]) >= 10)
    assert sequences(subscriber) == list(range(16, 26))
    sink.close()


def test_credentials_need_tls_unless_plaintext_is_allowed(mosquitto_factory, tmp_path):
    # given a broker that requires a password
    broker = mosquitto_factory(users={"station": "s3cret"})
    # then credentials without TLS are refused by the configuration
    with pytest.raises(ValidationError, match="clear text"):
        settings_for(broker.port, username="station", password_env="EIAD_MQTT_PASSWORD")
    # when plaintext is explicitly allowed, the password comes from the environment and works
    allowed = settings_for(
        broker.port, username="station", password_env="EIAD_MQTT_PASSWORD", allow_plaintext_credentials=True
    )
    sink = MqttSink(allowed, Outbox(OutboxSettings(path=tmp_path / "o.db")), environ={"EIAD_MQTT_PASSWORD": "s3cret"})
    sink.handle(make_result(1, "OK"))
    assert sink.flush(10), sink.stats()
    assert sink.stats()["acked"] == 1
    sink.close()


def test_wrong_password_is_reported_with_the_connack_code(mosquitto_factory, tmp_path, caplog):
    broker = mosquitto_factory(users={"station": "s3cret"})
    settings = settings_for(
        broker.port, username="station", password_env="PW", allow_plaintext_credentials=True, close_timeout_s=0.3
    )
    sink = MqttSink(settings, Outbox(OutboxSettings(path=tmp_path / "o.db")), environ={"PW": "wrong-pw"})
    # when the broker refuses, handle() still stores and nothing raises
    sink.handle(make_result(1, "OK"))
    assert not sink.flush(2)
    stats = sink.stats()
    assert stats["connect_refusals"] >= 1 and not stats["connected"]
    assert stats["last_refusal_code"] in (0x86, 0x87)  # bad user name or password / not authorized
    assert stats["outbox_depth_rows"] == 1
    assert "wrong-pw" not in caplog.text
    sink.close()


def test_tls_with_credentials_delivers_and_a_wrong_ca_is_refused(mosquitto_factory, tmp_path):
    from edge.sinks.mqtt.config import TlsSettings
    from tests.support.mosquitto import make_tls_files

    # given a TLS-only broker with a password
    tls = make_tls_files(tmp_path / "pki")
    broker = mosquitto_factory(users={"station": "s3cret"}, tls=tls)
    settings = settings_for(broker.port, username="station", password_env="PW", tls=TlsSettings(ca_file=tls.ca_file))
    # when the station connects with the CA that signed the broker
    sink = MqttSink(settings, Outbox(OutboxSettings(path=tmp_path / "o.db")), environ={"PW": "s3cret"})
    sink.handle(make_result(1, "NG"))
    # then the verdict and mask are acknowledged over TLS
    assert sink.flush(10), sink.stats()
    assert sink.stats()["acked"] == 2
    sink.close()
    # and a station trusting another CA never connects (and does not crash)
    other = make_tls_files(tmp_path / "other")
    bad = settings_for(
        broker.port, username="station", password_env="PW", tls=TlsSettings(ca_file=other.ca_file), close_timeout_s=0.3
    )
    sink = MqttSink(bad, Outbox(OutboxSettings(path=tmp_path / "o2.db")), environ={"PW": "s3cret"})
    sink.handle(make_result(2, "OK"))
    assert not sink.flush(1.5)
    assert sink.stats()["connects"] == 0 and sink.stats()["outbox_depth_rows"] == 1
    sink.close()


def test_mqtt_311_puts_the_inspection_id_in_the_mask_topic(mosquitto, subscriber, tmp_path):
    sink = MqttSink(settings_for(mosquitto.port, protocol="3.1.1"), Outbox(OutboxSettings(path=tmp_path / "o.db")))
    sink.handle(make_result(1, "NG"))
    assert sink.flush(10)
    assert subscriber.wait_for(lambda m: any("/mask/" in x.topic for x in m) and len(sequences(subscriber)) == 1)
    masks = [m for m in subscriber.snapshot() if "/mask/" in m.topic]
    assert masks[0].topic == "eiad/l1/st1/mask/st1-000001"
    assert cv2.imdecode(np.frombuffer(masks[0].payload, np.uint8), cv2.IMREAD_UNCHANGED).shape == (64, 96)
    sink.close()
