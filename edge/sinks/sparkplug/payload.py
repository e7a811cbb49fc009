"""The few fields of the Sparkplug B `Payload` protobuf the station uses, by hand.

No protobuf dependency and no generated code: the wire format of the subset below is
small and fixed (Eclipse Sparkplug B 3.0, `sparkplug_b.proto`):

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

`decode_payload` reads what `encode_payload` writes (and skips any other field a real
Sparkplug client may add), so tests and tools can check messages without protobuf.
Pure functions; thread-safe.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Sparkplug B DataType enum values used here (the full enum has more).
INT32, INT64, UINT32, UINT64, FLOAT, DOUBLE, BOOLEAN, STRING = 3, 4, 7, 8, 9, 10, 11, 12
_SIGNED_32 = {1, 2, 3}  # Int8, Int16, Int32: two's complement in the uint32 int_value
_SIGNED_64 = {4}  # Int64: two's complement in the uint64 long_value
_INT_FIELD = {1: 10, 2: 10, 3: 10, 5: 10, 6: 10, 7: 10, 4: 11, 8: 11, 13: 11}  # datatype -> field
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


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


def encode_payload(payload: Payload) -> bytes:
    out = bytearray()
    if payload.timestamp_ms is not None:
        _varint_field(out, 1, payload.timestamp_ms)
    for metric in payload.metrics:
        _bytes_field(out, 2, _encode_metric(metric))
    if payload.seq is not None:
        _varint_field(out, 3, payload.seq)
    return bytes(out)


def decode_payload(data: bytes) -> Payload:
    """Parse a Payload; ValueError on truncated or malformed bytes."""
    timestamp, seq, metrics = None, None, []
    for field, wire, value in _fields(data):
        if field == 1 and wire == _VARINT:
            timestamp = value
        elif field == 2 and wire == _LEN:
            metrics.append(_decode_metric(value))
        elif field == 3 and wire == _VARINT:
            seq = value
    return Payload(timestamp, tuple(metrics), seq)


def _encode_metric(m: Metric) -> bytes:
    out = bytearray()
    if m.name is not None:
        _bytes_field(out, 1, m.name.encode("utf-8"))
    for field, number in ((2, m.alias), (3, m.timestamp_ms), (4, m.datatype)):
        if number is not None:
            _varint_field(out, field, number)
    if m.value is None:
        _varint_field(out, 7, 1)
    else:
        _encode_value(out, m.datatype, m.value)
    return bytes(out)


def _encode_value(out: bytearray, datatype: int | None, value) -> None:
    if isinstance(value, bool) or datatype == BOOLEAN:
        _varint_field(out, 14, int(bool(value)))
    elif isinstance(value, str):
        _bytes_field(out, 15, value.encode("utf-8"))
    elif datatype == FLOAT:
        _key(out, 12, _FIXED32)
        out += struct.pack("<f", float(value))
    elif datatype == DOUBLE or isinstance(value, float):
        _key(out, 13, _FIXED64)
        out += struct.pack("<d", float(value))
    else:
        field = _INT_FIELD.get(datatype or UINT64, 11)
        _varint_field(out, field, int(value) & (0xFFFFFFFF if field == 10 else 0xFFFFFFFFFFFFFFFF))


def _decode_metric(data: bytes) -> Metric:
    fields: dict[int, object] = {}
    for field, wire, value in _fields(data):
        if field in (1, 15) and wire == _LEN:
            value = bytes(value).decode("utf-8")
        elif field == 12 and wire == _FIXED32:
            value = struct.unpack("<f", value)[0]
        elif field == 13 and wire == _FIXED64:
            value = struct.unpack("<d", value)[0]
        fields[field] = value
    datatype = fields.get(4)
    value = next((fields[f] for f in (10, 11, 12, 13, 14, 15) if f in fields), None)
    if 14 in fields:
        value = bool(fields[14])
    elif 10 in fields and datatype in _SIGNED_32 and value >= 1 << 31:  # type: ignore[operator]
        value -= 1 << 32  # type: ignore[operator]
    elif 11 in fields and datatype in _SIGNED_64 and value >= 1 << 63:  # type: ignore[operator]
        value -= 1 << 64  # type: ignore[operator]
    if fields.get(7):
        value = None
    return Metric(fields.get(1), fields.get(2), datatype, value, fields.get(3))  # type: ignore[arg-type]


def _key(out: bytearray, field: int, wire: int) -> None:
    _varint(out, field << 3 | wire)


def _varint_field(out: bytearray, field: int, value: int) -> None:
    _key(out, field, _VARINT)
    _varint(out, value)


def _bytes_field(out: bytearray, field: int, raw: bytes) -> None:
    _key(out, field, _LEN)
    _varint(out, len(raw))
    out += raw


def _varint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError(f"varint of a negative number {value}: encode it as two's complement first")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint in a Sparkplug payload")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) for each field: int for varints, bytes otherwise."""
    data, pos = memoryview(data), 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(data, pos)
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            value, pos = bytes(data[pos : pos + size]), pos + size
        elif wire == _LEN:
            size, pos = _read_varint(data, pos)
            value, pos = bytes(data[pos : pos + size]), pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {field}) in a Sparkplug payload")
        if pos > len(data):
            raise ValueError(f"truncated field {field} in a Sparkplug payload")
        yield field, wire, value
