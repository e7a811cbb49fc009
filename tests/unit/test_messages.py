"""The MQTT message schema: checked-in JSON Schema files match the models, and produced
payloads validate against them."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from benchmarks.stand_ins.results import make_result
from edge.sinks.mqtt.sink import build_verdict, stage_latencies_ms
from eiad.messages import (
    SCHEMA_DIR,
    ExplainRequestMessage,
    ExplainResponseMessage,
    ExplanationMessage,
    OutboxStatsPayload,
    StatsMessage,
    StatusMessage,
    Topics,
    VerdictMessage,
    iso_utc,
    render_schema,
    schema_documents,
    write_schemas,
)
from tests.support.json_schema import validate


def schema(kind: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{kind}.v1.schema.json").read_text())


def test_checked_in_schema_files_match_the_models():
    # a failure here means: run `python -m eiad.messages` and commit eiad/schemas/
    for name, doc in schema_documents().items():
        path = SCHEMA_DIR / name
        assert path.exists(), f"{path} missing: run python -m eiad.messages"
        assert path.read_text() == render_schema(doc), f"{path} drifted from eiad/messages.py"


def test_write_schemas_writes_every_kind(tmp_path):
    written = write_schemas(tmp_path)
    assert sorted(p.name for p in written) == sorted(schema_documents())
    assert json.loads(written[0].read_text())["$schema"].endswith("2020-12/schema")


@pytest.mark.parametrize("verdict", ["OK", "NG", "REJECTED"])
def test_verdict_payload_validates_and_round_trips(verdict):
    # given a result as the pipeline produces it
    result = make_result(7, verdict)
    # when the sink builds its payload
    msg = build_verdict(result, "st1", "line1", 1_700_000_000.25, result.stamps_ns, verdict == "NG")
    payload = json.loads(msg.to_json_bytes())
    # then it conforms to the checked-in schema and parses back to the same message
    assert validate(payload, schema("verdict")) == []
    assert VerdictMessage.model_validate(payload) == msg
    assert payload["schema_version"] == 1 and payload["sequence"] == 7
    assert payload["published_at"] == "2023-11-14T22:13:20.250Z"
    assert payload["defect_class"] == ("scratch" if verdict == "NG" else None)
    assert payload["reason"] == ("frame too dark" if verdict == "REJECTED" else "")
    if verdict == "NG":
        assert payload["regions"] == [{"box_xyxy": [30, 10, 50, 20], "area_px": 200, "max_score": 0.93}]


def test_the_validator_catches_bad_payloads():
    good = json.loads(build_verdict(make_result(1), "s", "l", 0.0, {}, False).to_json_bytes())
    bad_verdict = {**good, "verdict": "MAYBE"}
    missing = {k: v for k, v in good.items() if k != "inspection_id"}
    extra = {**good, "surprise": 1}
    bad_region = {**good, "regions": [{"box_xyxy": [1, 2, 3], "area_px": 1, "max_score": 0.5}]}
    for payload in (bad_verdict, missing, extra, bad_region):
        assert validate(payload, schema("verdict")) != []


def test_other_payloads_validate():
    explanation = ExplanationMessage(
        inspection_id="a",
        station="s",
        line="l",
        text="scratch at top left",
        published_at=iso_utc(0),
        meta={"model": "q4", "tokens": 41},
    )
    status = StatusMessage(station="s", line="l", state="offline", since=iso_utc(0), client_id="c")
    stats = StatsMessage(
        station="s",
        line="l",
        published_at=iso_utc(0),
        uptime_s=1.5,
        connected=True,
        outbox=OutboxStatsPayload(
            depth_rows=0, depth_bytes=0, acked=3, replayed=0, dropped_by_reason={"expired": 1}, full_alarm=False
        ),
        publish_latency_ms={"p50": 1.0},
        pipeline={"fps": 30.0},
    )
    for kind, msg in (("explanation", explanation), ("status", status), ("stats", stats)):
        payload = json.loads(msg.to_json_bytes())
        assert validate(payload, schema(kind)) == [], kind
        assert type(msg).model_validate(payload) == msg


def test_unknown_fields_and_versions_are_rejected():
    good = json.loads(build_verdict(make_result(1), "s", "l", 0.0, {}, False).to_json_bytes())
    with pytest.raises(ValidationError):
        VerdictMessage.model_validate({**good, "schema_version": 2})
    with pytest.raises(ValidationError):
        VerdictMessage.model_validate({**good, "extra": True})


def test_stage_latencies_follow_time_order_and_total():
    stamps = {"inferred": 4_000_000, "captured": 0, "preprocessed": 1_500_000}
    assert stage_latencies_ms(stamps) == {"preprocessed": 1.5, "inferred": 2.5, "total": 4.0}
    assert stage_latencies_ms({"captured": 5}) == {}


def test_topics_are_built_and_checked():
    topics = Topics("plant/eiad", "line1", "st3")
    assert topics.of("verdict") == "plant/eiad/line1/st3/verdict"
    assert topics.all_wildcard() == "plant/eiad/line1/st3/#"
    for bad in (("p", "line+1", "s"), ("p", "l", "s/3"), ("p", "", "s"), ("p#", "l", "s")):
        with pytest.raises(ValueError):
            Topics(*bad)


def test_iso_utc_has_milliseconds_and_z():
    assert iso_utc(0.0015) == "1970-01-01T00:00:00.001Z"


def test_explain_request_schema_is_strict_and_the_response_validates():
    # given the one inbound message kind
    good = {"schema_version": 1, "inspection_id": "st1-cam0-1700000000000000000-4", "requested_by": "hmi-2"}
    assert validate(good, schema("explain_request")) == []
    assert ExplainRequestMessage.model_validate(good).inspection_id == good["inspection_id"]
    # then wrong types (no coercion), unknown keys, a missing version and a bad requester are refused
    for bad in (
        {**good, "inspection_id": 12},
        {**good, "command": "shutdown"},
        {k: v for k, v in good.items() if k != "schema_version"},
        {**good, "schema_version": 2},
    ):
        with pytest.raises(ValidationError):
            ExplainRequestMessage.model_validate(bad)
        assert validate(bad, schema("explain_request")) != []
    with pytest.raises(ValidationError):  # requested_by is copied into meta: a short name, no spaces
        ExplainRequestMessage.model_validate({**good, "requested_by": "a b"})
    response = ExplainResponseMessage(
        inspection_id=None, status="rejected", reason="too_large", station="st1", line="l1", published_at=iso_utc(0)
    )
    assert validate(json.loads(response.to_json_bytes()), schema("explain_response")) == []
    assert Topics("eiad", "l1", "st1").of("explain/request") == "eiad/l1/st1/explain/request"


def test_the_schema_check_enforces_patterns_and_lengths_as_the_station_does():
    # the explain-request schema limits ids by length and requesters by a pattern: a request
    # breaking them is refused by the schema as by the station's model
    good = {"schema_version": 1, "inspection_id": "st1-cam0-1", "requested_by": "hmi-1"}
    assert validate(good, schema("explain_request")) == []
    for bad in (
        {**good, "inspection_id": ""},
        {**good, "inspection_id": "x" * 201},
        {**good, "requested_by": "operator with spaces"},
    ):
        assert validate(bad, schema("explain_request")) != [], bad
        with pytest.raises(ValidationError):
            ExplainRequestMessage.model_validate(bad)
