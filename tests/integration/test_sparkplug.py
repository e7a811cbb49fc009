"""Sparkplug B output: the hand-written payload codec (checked against the real protobuf
runtime) and the sink against a real Mosquitto: NBIRTH, NDATA per inspection with seq
wrapping at 256, NDEATH (the last will) on an unclean disconnect, rebirth with bdSeq + 1."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

import pytest
from pydantic import ValidationError

from benchmarks.stand_ins.results import make_result
from benchmarks.stand_ins.subscriber import Subscriber
from edge.app import build_station
from edge.sinks.mqtt.config import MqttSettings, SparkplugSettings
from edge.sinks.sparkplug.payload import (
    BOOLEAN,
    DOUBLE,
    FLOAT,
    INT32,
    INT64,
    STRING,
    UINT32,
    UINT64,
    Metric,
    Payload,
    decode_payload,
    encode_payload,
)
from edge.sinks.sparkplug.sink import SparkplugSink
from tests.integration.test_station_mqtt import make_station
from tests.support.mosquitto import free_port
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)

ALL_KINDS = Payload(
    1_700_000_000_123,
    (
        Metric("bdSeq", None, UINT64, 7),
        Metric("Inspection/Verdict", 1, STRING, "NG", 1_700_000_000_100),
        Metric("Inspection/Score", 2, DOUBLE, 0.912345678901),
        Metric("Inspection/DefectClass", 3, STRING, None),
        Metric("Temp", 4, FLOAT, 21.5),
        Metric("Offset", 5, INT32, -3),
        Metric("Big", 6, INT64, -(2**40)),
        Metric("Count", 7, UINT32, 4_000_000_000),
        Metric("Node Control/Rebirth", None, BOOLEAN, False),
        Metric("Name/ünïcode", 8, STRING, "Ölfleck"),
    ),
    seq=255,
)


def test_codec_round_trips_every_value_kind():
    assert decode_payload(encode_payload(ALL_KINDS)) == ALL_KINDS


def test_codec_matches_the_protobuf_runtime():
    # given the Sparkplug B Payload schema, built as a descriptor for the protobuf runtime
    payload_cls = _protobuf_payload_class()
    # when the real runtime parses our bytes, and we parse its bytes
    parsed = payload_cls.FromString(encode_payload(ALL_KINDS))
    back = decode_payload(parsed.SerializeToString())
    # then both sides agree field by field
    assert parsed.timestamp == 1_700_000_000_123 and parsed.seq == 255 and len(parsed.metrics) == 10
    by_name = {m.name: m for m in parsed.metrics}
    assert by_name["Inspection/Verdict"].string_value == "NG" and by_name["Inspection/Verdict"].alias == 1
    assert by_name["Inspection/Score"].double_value == 0.912345678901
    assert by_name["Inspection/DefectClass"].is_null and not by_name["Inspection/DefectClass"].HasField("string_value")
    assert by_name["Temp"].float_value == 21.5 and by_name["Count"].int_value == 4_000_000_000
    assert by_name["Offset"].int_value == 2**32 - 3  # two's complement in uint32, as Sparkplug says
    assert by_name["Node Control/Rebirth"].HasField("boolean_value") and by_name["bdSeq"].long_value == 7
    assert back == ALL_KINDS


def test_malformed_bytes_are_a_value_error():
    whole = encode_payload(ALL_KINDS)
    with pytest.raises(ValueError, match="malformed Sparkplug B payload"):
        decode_payload(whole[:-5])  # inside the last metric
    with pytest.raises(ValueError, match="malformed Sparkplug B payload"):
        decode_payload(whole[:-1])  # inside seq


@pytest.mark.mqtt
def test_birth_data_with_wrapping_seq_and_death_on_an_unclean_disconnect(mosquitto):
    # given a SCADA host listening to the Sparkplug namespace and a station's Sparkplug sink
    host = Subscriber(mosquitto.port, "spBv1.0/#", client_id="scada-host")
    assert host.subscribed.wait(5)
    settings = MqttSettings(
        port=mosquitto.port,
        line="l1",
        station="s1",
        reconnect_min_delay_s=0.2,
        reconnect_max_delay_s=0.5,
        sparkplug=SparkplugSettings(group_id="plant1", queue_max=1024),
    )
    sink = SparkplugSink(settings, "tiny-v1")
    try:
        assert host.wait_for(lambda msgs: _of(msgs, "NBIRTH"), 10)
        # when 300 inspections are handed over (every third NG)
        results = [make_result(i, "NG" if i % 3 == 0 else "OK") for i in range(1, 301)]
        for result in results:
            sink.handle(result)
        assert host.wait_for(lambda msgs: len(_of(msgs, "NDATA")) >= 300, 10)
        # and the network drops without a DISCONNECT
        sink._client.socket().shutdown(socket.SHUT_RDWR)
        assert host.wait_for(lambda msgs: _of(msgs, "NDEATH") and len(_of(msgs, "NBIRTH")) >= 2, 10)
        sink.handle(make_result(301, "NG"))
        assert host.wait_for(lambda msgs: len(_of(msgs, "NDATA")) >= 301, 10)
        stats = sink.stats()
    finally:
        sink.close()
        time.sleep(0.2)
        messages = host.snapshot()
        host.close()
    topics = {m.topic for m in messages}
    assert topics == {"spBv1.0/plant1/NBIRTH/l1-s1", "spBv1.0/plant1/NDATA/l1-s1", "spBv1.0/plant1/NDEATH/l1-s1"}
    births, deaths = _of(messages, "NBIRTH"), _of(messages, "NDEATH")
    # then the birth declares every metric with alias and datatype, seq 0, bdSeq 0
    birth = births[0]
    defs = {m.name: m for m in birth.metrics}
    assert birth.seq == 0 and defs["bdSeq"].value == 0 and defs["Node Control/Rebirth"].value is False
    assert defs["Model/Id"].value == "tiny-v1"
    assert {n: (m.alias, m.datatype) for n, m in defs.items() if m.alias} == {
        "Inspection/Verdict": (1, STRING),
        "Inspection/Score": (2, DOUBLE),
        "Inspection/DefectClass": (3, STRING),
        "Inspection/Sequence": (4, UINT64),
        "Inspection/Id": (5, STRING),
        "Model/Id": (6, STRING),
    }
    names = {m.alias: n for n, m in defs.items() if m.alias}
    # and one NDATA per inspection, in order, seq 1..255 then 0, 1, ... (by alias only)
    data = _of(messages, "NDATA")
    assert [p.seq for p in data[:300]] == [i % 256 for i in range(1, 301)]
    first = {names[m.alias]: m.value for m in data[0].metrics}
    assert all(m.name is None for m in data[0].metrics)
    assert first == {
        "Inspection/Verdict": "OK",
        "Inspection/Score": 0.1,
        "Inspection/DefectClass": None,
        "Inspection/Sequence": 1,
        "Inspection/Id": "st1-000001",
    }
    third = {names[m.alias]: m.value for m in data[2].metrics}
    assert third["Inspection/Verdict"] == "NG" and third["Inspection/DefectClass"] == "scratch"
    assert [{names[m.alias]: m.value for m in p.metrics}["Inspection/Sequence"] for p in data[:300]] == list(
        range(1, 301)
    )
    # and the broker published the will: NDEATH with the first session's bdSeq, then a rebirth
    assert [d.metrics[0].name for d in deaths] == ["bdSeq"] * len(deaths)
    assert deaths[0].metrics[0].value == 0 and deaths[0].seq is None
    rebirth = {m.name: m.value for m in births[1].metrics}
    assert births[1].seq == 0 and rebirth["bdSeq"] == 1 and rebirth["Inspection/Sequence"] == 300
    assert data[300].seq == 1  # seq restarts after the rebirth
    # and a clean close says NDEATH itself with the current bdSeq
    assert deaths[-1].metrics[0].value == 1 and len(deaths) == 2
    assert stats["births"] == 2 and stats["published"] == 303 and stats["dropped_by_reason"] == {}


def _of(messages, kind: str) -> list[Payload]:
    return [decode_payload(m.payload) for m in messages if m.topic.split("/")[2] == kind]


def _protobuf_payload_class():
    """The Sparkplug B Payload message class, written here independently of the station's
    (same field numbers and types as sparkplug_b.proto): the two must agree on the wire."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="sparkplug_b_test.proto", package="tahu", syntax="proto2")
    payload = proto.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    for name, number, kind in (
        ("name", 1, field.TYPE_STRING),
        ("alias", 2, field.TYPE_UINT64),
        ("timestamp", 3, field.TYPE_UINT64),
        ("datatype", 4, field.TYPE_UINT32),
        ("is_null", 7, field.TYPE_BOOL),
    ):
        metric.field.add(name=name, number=number, type=kind, label=field.LABEL_OPTIONAL)
    for name, number, kind in (
        ("int_value", 10, field.TYPE_UINT32),
        ("long_value", 11, field.TYPE_UINT64),
        ("float_value", 12, field.TYPE_FLOAT),
        ("double_value", 13, field.TYPE_DOUBLE),
        ("boolean_value", 14, field.TYPE_BOOL),
        ("string_value", 15, field.TYPE_STRING),
    ):
        metric.field.add(name=name, number=number, type=kind, label=field.LABEL_OPTIONAL, oneof_index=0)
    payload.field.add(name="timestamp", number=1, type=field.TYPE_UINT64, label=field.LABEL_OPTIONAL)
    payload.field.add(
        name="metrics", number=2, type=field.TYPE_MESSAGE, label=field.LABEL_REPEATED, type_name=".tahu.Payload.Metric"
    )
    payload.field.add(name="seq", number=3, type=field.TYPE_UINT64, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(proto.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tahu.Payload"))


def test_without_a_broker_inspections_are_dropped_and_counted_at_most_once():
    # given a Sparkplug sink whose broker is down
    sink = SparkplugSink(
        MqttSettings(port=free_port(), line="l1", station="s1", sparkplug=SparkplugSettings(group_id="plant1")), "m"
    )
    try:
        # when three inspections arrive
        for i in range(1, 4):
            sink.handle(make_result(i))
        stats = sink.stats()
    finally:
        sink.close(timeout_s=0.1)
    # then nothing waits for a later send (QoS 0, no outbox): each is counted as dropped
    assert stats["dropped_by_reason"] == {"disconnected": 3} and stats["published"] == 0
    assert stats["connected"] is False and stats["node"] == "spBv1.0/plant1/NBIRTH/l1-s1"


def test_sparkplug_ids_that_are_not_one_topic_level_are_refused():
    with pytest.raises(ValidationError, match="group_id"):
        MqttSettings(line="l1", station="s1", sparkplug={"group_id": "plant/1"})
    with pytest.raises(ValidationError, match="edge_node_id"):
        MqttSettings(line="l1", station="s1", sparkplug={"group_id": "p", "edge_node_id": "a+b"})


@pytest.mark.mqtt
def test_a_station_with_mqtt_sparkplug_publishes_one_ndata_per_part(tmp_path, tiny_artifact, mosquitto):
    # given a station on a 6-part line with `mqtt.sparkplug` set, and a SCADA host
    config, truths = make_station(tmp_path, tiny_artifact, mosquitto.port, 6)
    mqtt = config.mqtt.model_copy(update={"sparkplug": SparkplugSettings(group_id="plant1")})
    config = config.model_copy(update={"mqtt": mqtt})
    host = Subscriber(mosquitto.port, "spBv1.0/#", client_id="scada-station")
    assert host.subscribed.wait(5)
    station = build_station(config)
    try:
        assert host.wait_for(lambda msgs: _of(msgs, "NBIRTH"), 10)
        # when the line runs
        station.pipeline.run(threading.Event())
        assert host.wait_for(lambda msgs: len(_of(msgs, "NDATA")) >= 6, 10)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{station.health.port}/metrics", timeout=5).read().decode()
    finally:
        station.close()
        host.close()
    # then each part's verdict arrives as NDATA, named by the birth's aliases, and is counted
    birth = _of(host.snapshot(), "NBIRTH")[0]
    names = {m.alias: m.name for m in birth.metrics if m.alias}
    assert {m.name: m.value for m in birth.metrics}["Model/Id"] == "tiny-eiad-test"
    verdicts = [
        {names[m.alias]: m.value for m in p.metrics}["Inspection/Verdict"] for p in _of(host.snapshot(), "NDATA")
    ]
    assert verdicts == [t["label"] for t in truths]
    assert "eiad_sparkplug_published_total 7.0" in metrics  # NBIRTH + 6 NDATA
