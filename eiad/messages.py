"""The versioned MQTT message schema: payload models, topic names and JSON Schema files.

Every JSON payload carries `schema_version`; a consumer rejects a major version it does
not know. Adding an optional field keeps the version; renaming, removing or changing
the meaning of a field bumps it. The JSON Schema files under `eiad/schemas/` are
generated from these models by `write_schemas()` (`python -m eiad.messages`) and a test
fails when they drift from the models.

Delivery is at least once: consumers de-duplicate on (`inspection_id`, message kind).
This module is pure (no I/O except `write_schemas`) and imports neither torch nor paho.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
MASK_CONTENT_TYPE = "image/png"
SCHEMA_DIR = Path(__file__).parent / "schemas"

MessageKind = Literal["verdict", "mask", "explanation", "status", "stats", "explain/request", "explain/response"]
# The one inbound message: an explanation request (see ExplainRequestMessage).
INSPECTION_ID_MAX_CHARS = 200
REQUESTED_BY_PATTERN = r"^[A-Za-z0-9_.@:-]{1,64}$"


def iso_utc(unix_s: float) -> str:
    """Unix seconds -> ISO 8601 UTC with milliseconds and a `Z` suffix."""
    moment = datetime.fromtimestamp(unix_s, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Payload(BaseModel):
    # The schema describes what consumers receive: every field is always present.
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_serialization_defaults_required=True)

    def to_json_bytes(self) -> bytes:
        """Compact UTF-8 JSON, the bytes that go on the wire."""
        return self.model_dump_json().encode("utf-8")


class RegionPayload(_Payload):
    """One connected defect region, in input-image pixels."""

    box_xyxy: tuple[int, int, int, int] = Field(description="x0, y0, x1, y1 (pixels, exclusive end)")
    area_px: int = Field(ge=0, description="Defect pixels in the region")
    max_score: float = Field(description="Highest anomaly score inside the region")


class VerdictMessage(_Payload):
    """`<prefix>/<line>/<station>/verdict`: QoS 1, not retained, one per inspected frame."""

    schema_version: Literal[1] = SCHEMA_VERSION
    inspection_id: str = Field(description="Unique per station; the de-duplication key")
    sequence: int = Field(ge=1, description="Per-station counter from 1, no gaps")
    station: str
    line: str
    source_id: str = Field(description="Camera/source that produced the frame")
    frame_id: int = Field(ge=0)
    verdict: Literal["OK", "NG", "REJECTED"] = Field(
        description="REJECTED: the frame could not be inspected (see reason)"
    )
    score: float = Field(description="Image anomaly score; compare with the model's threshold")
    defect_class: str | None = Field(
        description="Predicted class for NG, else null. 'unknown' when the model's confidence in its best class is "
        "below the calibrated cut-off (the artifact's thresholds.class_confidence): act on the verdict, not on a guess"
    )
    class_confidence: float = Field(
        ge=0.0,
        le=1.0,
        description="The model's probability of its best class (also "
        "when the class is 'unknown'); 0 for OK and REJECTED",
    )
    regions: list[RegionPayload]
    model_id: str = Field(description="Export artifact id that produced the verdict")
    captured_at: str = Field(description="Capture time, ISO 8601 UTC")
    published_at: str = Field(description="Time the station handed the message over, ISO 8601 UTC")
    latency_ms: dict[str, float] = Field(
        description="Milliseconds spent in each stage (time since the previous stage), plus 'total'"
    )
    mask_published: bool = Field(description="True when a mask message follows on the mask topic")
    reason: str = Field(default="", description="Why a frame was REJECTED; empty otherwise")


class ExplanationMessage(_Payload):
    """`.../explanation`: QoS 1, not retained; arrives later for an earlier verdict."""

    schema_version: Literal[1] = SCHEMA_VERSION
    inspection_id: str = Field(description="Same id as the verdict it explains")
    station: str
    line: str
    text: str = Field(description="The language model's explanation for an operator")
    consistent: bool | None = Field(
        default=None,
        description="Whether the text agrees with the verdict, class and mask it explains (read back by the "
        "station's checker); null when it was not checked. A consumer may hide an inconsistent explanation.",
    )
    disagreements: list[Literal["verdict", "class", "location", "size", "shape", "appearance"]] = Field(
        default_factory=list, description="What disagreed when consistent is false"
    )
    published_at: str
    meta: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="Model id, prompt id, generation time, ..."
    )


class StatusMessage(_Payload):
    """`.../status`: retained. `online` on connect; the broker publishes `offline` (last
    will) if the station vanishes, and the station publishes it on a clean shutdown."""

    schema_version: Literal[1] = SCHEMA_VERSION
    station: str
    line: str
    state: Literal["online", "offline"]
    since: str = Field(description="When the station set this state, ISO 8601 UTC")
    client_id: str


class OutboxStatsPayload(_Payload):
    """Durable outbox counters since the process started (depth is current)."""

    depth_rows: int
    depth_bytes: int
    acked: int
    replayed: int
    dropped_by_reason: dict[str, int]
    full_alarm: bool


class StatsMessage(_Payload):
    """`.../stats`: QoS 0, not retained, published periodically by the station."""

    schema_version: Literal[1] = SCHEMA_VERSION
    station: str
    line: str
    published_at: str
    uptime_s: float
    connected: bool
    outbox: OutboxStatsPayload
    publish_latency_ms: dict[str, float] = Field(
        description="Outbox write -> PUBACK over recent messages: p50, p99, max"
    )
    pipeline: dict[str, float] = Field(
        default_factory=dict, description="Counters and rates from the station (fps, drops, ...)"
    )


class ExplainRequestMessage(BaseModel):
    """`.../explain/request`: the one message the station accepts (when
    `explainer.mqtt_requests` is set), published by a PLC/SCADA/HMI at QoS 1. Strict: no
    type coercion, unknown keys rejected. The station answers on `.../explain/response`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    schema_version: Literal[1] = Field(description="Required: a request names the version it was written for")
    inspection_id: str = Field(
        min_length=1, max_length=INSPECTION_ID_MAX_CHARS, description="Id of a recent verdict of this station"
    )
    requested_by: str | None = Field(
        default=None,
        pattern=REQUESTED_BY_PATTERN,
        description="Who asked (operator, HMI name); copied into the explanation's meta",
    )

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


class ExplainResponseMessage(_Payload):
    """`.../explain/response`: QoS 0, not retained; one answer per request received
    (accepted: the explanation follows on `.../explanation`; rejected: `reason` says why)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    inspection_id: str | None = Field(
        description="The requested id when it could be read and is well formed, else null"
    )
    status: Literal["accepted", "rejected"]
    reason: str = Field(
        description="Empty when accepted; else too_large, not_utf8, malformed_json, not_object, "
        "unsupported_version, unknown_field, missing_field, wrong_type, bad_inspection_id, "
        "other_station, unknown_inspection, not_explainable, duplicate, rate_limited, "
        "backlog_full, stopped"
    )
    station: str
    line: str
    published_at: str


@dataclass(frozen=True)
class Topics:
    """Topic names for one station. Pure value object; thread-safe."""

    prefix: str
    line: str
    station: str

    def __post_init__(self) -> None:
        for name in ("prefix", "line", "station"):
            value = getattr(self, name)
            if not value or any(ch in value for ch in "+#\0") or (name != "prefix" and "/" in value):
                raise ValueError(
                    f"topic part {name}={value!r} must be non-empty without '+', '#'"
                    + (" or '/'" if name != "prefix" else "")
                )

    @property
    def base(self) -> str:
        return f"{self.prefix.rstrip('/')}/{self.line}/{self.station}"

    def of(self, kind: MessageKind) -> str:
        """Topic of one message kind, e.g. `eiad/line1/st3/verdict`."""
        return f"{self.base}/{kind}"

    def all_wildcard(self) -> str:
        """Subscription filter for every topic of this station."""
        return f"{self.base}/#"


SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "verdict": VerdictMessage,
    "explanation": ExplanationMessage,
    "status": StatusMessage,
    "stats": StatsMessage,
    "explain_request": ExplainRequestMessage,
    "explain_response": ExplainResponseMessage,
}
_VALIDATION_MODE = {"explain_request"}  # inbound: the schema describes what the station accepts


def schema_documents() -> dict[str, dict]:
    """File name -> JSON Schema (draft 2020-12) for every JSON message kind."""
    docs = {}
    for kind, model in SCHEMA_MODELS.items():
        schema = model.model_json_schema(mode="validation" if kind in _VALIDATION_MODE else "serialization")
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"eiad/{kind}.v{SCHEMA_VERSION}.schema.json",
            **schema,
        }
        docs[f"{kind}.v{SCHEMA_VERSION}.schema.json"] = schema
    return docs


def render_schema(doc: dict) -> str:
    """The exact text checked in for one schema (stable key order, trailing newline)."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Regenerate the JSON Schema files; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, doc in schema_documents().items():
        path = directory / name
        path.write_text(render_schema(doc), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m eiad.messages: regenerate eiad/schemas/*.json
    for written_path in write_schemas():
        print(written_path)
