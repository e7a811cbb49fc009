"""The Sparkplug B `Payload` messages the station sends, through the protobuf runtime.

The schema is the subset of Eclipse Sparkplug B 3.0's `sparkplug_b.proto` the station
uses, built as a descriptor at import (no protoc, no generated code in the repository):

    message Payload {                       message Metric {
      optional uint64 timestamp = 1;          optional string name = 1;
      repeated Metric metrics   = 2;          optional uint64 alias = 2;
      optional uint64 seq       = 3;          optional uint64 timestamp = 3;
    }                                         optional uint32 datatype = 4;
                                              optional bool   is_null = 7;
                                              oneof value { uint32 int_value = 10;
                                                uint64 long_value = 11; float float_value = 12;
                                                double double_value = 13; bool boolean_value = 14;
                                                string string_value = 15; }
                                            }

Fields a real Sparkplug client adds beyond these are skipped when decoding (protobuf keeps
them as unknown fields). `Metric` and `Payload` are plain frozen dataclasses; the
protobuf objects stay inside this module. Thread-safe.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

# Sparkplug B DataType enum values used here (the full enum has more).
INT32, INT64, UINT32, UINT64, FLOAT, DOUBLE, BOOLEAN, STRING = 3, 4, 7, 8, 9, 10, 11, 12
_SIGNED_32 = {1, 2, 3}  # Int8, Int16, Int32: two's complement in the uint32 int_value
_SIGNED_64 = {4}  # Int64: two's complement in the uint64 long_value
_INT_FIELD = {1: "int_value", 2: "int_value", 3: "int_value", 5: "int_value", 6: "int_value", 7: "int_value"}


@dataclass(frozen=True)
class Metric:
    """One metric. `name` and/or `alias` identify it (NDATA may carry the alias only);
    `datatype` is required in a BIRTH, optional in DATA; `value` None = is_null."""

    name: str | None = None
    alias: int | None = None
    datatype: int | None = None
    value: int | float | bool | str | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Payload:
    timestamp_ms: int | None
    metrics: tuple[Metric, ...]
    seq: int | None = None


@functools.cache
def _payload_class():
    """The protobuf message class of the Payload subset above, from a descriptor."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="eiad_sparkplug_b.proto", package="eiad.sparkplug", syntax="proto2")
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
        name="metrics",
        number=2,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_REPEATED,
        type_name=".eiad.sparkplug.Payload.Metric",
    )
    payload.field.add(name="seq", number=3, type=field.TYPE_UINT64, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(proto.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("eiad.sparkplug.Payload"))


def encode_payload(payload: Payload) -> bytes:
    message = _payload_class()()
    if payload.timestamp_ms is not None:
        message.timestamp = payload.timestamp_ms
    for metric in payload.metrics:
        _fill_metric(message.metrics.add(), metric)
    if payload.seq is not None:
        message.seq = payload.seq
    return message.SerializeToString()


def decode_payload(data: bytes) -> Payload:
    """Parse a Payload; ValueError on truncated or malformed bytes."""
    from google.protobuf.message import DecodeError

    try:
        message = _payload_class().FromString(bytes(data))
    except DecodeError as error:
        raise ValueError(f"malformed Sparkplug B payload ({len(data)} bytes): {error}") from error
    return Payload(
        message.timestamp if message.HasField("timestamp") else None,
        tuple(_metric_of(m) for m in message.metrics),
        message.seq if message.HasField("seq") else None,
    )


def _fill_metric(target, m: Metric) -> None:
    if m.name is not None:
        target.name = m.name
    for attribute, number in (("alias", m.alias), ("timestamp", m.timestamp_ms), ("datatype", m.datatype)):
        if number is not None:
            setattr(target, attribute, number)
    value, datatype = m.value, m.datatype
    if value is None:
        target.is_null = True
    elif isinstance(value, bool) or datatype == BOOLEAN:
        target.boolean_value = bool(value)
    elif isinstance(value, str):
        target.string_value = value
    elif datatype == FLOAT:
        target.float_value = float(value)
    elif datatype == DOUBLE or isinstance(value, float):
        target.double_value = float(value)
    elif _INT_FIELD.get(datatype or UINT64) == "int_value":
        target.int_value = int(value) & 0xFFFFFFFF  # signed kinds: two's complement, as Sparkplug says
    else:
        target.long_value = int(value) & 0xFFFFFFFFFFFFFFFF


def _metric_of(m) -> Metric:
    datatype = m.datatype if m.HasField("datatype") else None
    kind = m.WhichOneof("value")
    value = getattr(m, kind) if kind else None
    if kind == "int_value" and datatype in _SIGNED_32 and value >= 1 << 31:
        value -= 1 << 32
    elif kind == "long_value" and datatype in _SIGNED_64 and value >= 1 << 63:
        value -= 1 << 64
    if m.is_null:
        value = None
    return Metric(
        m.name if m.HasField("name") else None,
        m.alias if m.HasField("alias") else None,
        datatype,
        value,
        m.timestamp if m.HasField("timestamp") else None,
    )
