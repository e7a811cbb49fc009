"""Explanation requests over MQTT: the one input the station accepts, validated before any effect.

A PLC, SCADA host or HMI publishes `{"schema_version": 1, "inspection_id": "...",
"requested_by": "..."}` on `<prefix>/<line>/<station>/explain/request` (enabled by
`explainer.mqtt_requests`). Each payload goes through these checks, cheapest first, and
the first that fails names the rejection reason:

  too_large            more than `max_payload_bytes` (not even decoded)
  not_utf8             not UTF-8 text
  malformed_json       not JSON (NaN/Infinity and nesting too deep included)
  not_object           JSON, but not an object
  unsupported_version  `schema_version` missing or not 1
  unknown_field / missing_field / wrong_type   the schema (strict: no type coercion)
  bad_inspection_id    not of the form `<station>-<source>-<capture ns>-<frame id>`
  other_station        well formed, but another station's id
  then the explainer: unknown_inspection (never seen or forgotten), not_explainable
  (REJECTED frame), duplicate (already queued or explained), rate_limited (token bucket
  `rate_per_s`/`burst` over accepted requests), backlog_full, stopped.

Every request is counted (`explain_requests_accepted`, `explain_requests_rejected{reason}`),
answered on `.../explain/response` (QoS 0: advisory, never competes with verdicts for the
in-flight window), and a rejection is logged once per reason per `log_every_s` with the
number suppressed since: a flood cannot flood the log. An accepted request only queues a
job on the explainer's bounded backlog; the explanation is published later on the normal
explanation topic by the explainer's worker.

Thread safety: `handle` runs on paho's network thread (it never blocks on the language
model: validation is bounded by the size limit, the enqueue takes one short lock);
`stats` may be called from any thread.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable

from pydantic import ValidationError

from edge.explainer.config import MqttRequestSettings
from edge.explainer.worker import Explainer
from eiad.messages import ExplainRequestMessage, ExplainResponseMessage, Topics, iso_utc

log = logging.getLogger(__name__)

_ID_TAIL = r"[A-Za-z0-9_.-]+-[0-9]{1,20}-[0-9]{1,20}"  # <source>-<capture ns>-<frame id>
_ID_FORM = re.compile(rf"[A-Za-z0-9_.-]+-{_ID_TAIL}")


class TokenBucket:
    """`burst` tokens, refilled at `rate_per_s`; `take()` spends one. Not thread-safe by
    itself: the caller holds a lock (here the explainer's, via `admit`)."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clock = rate_per_s, float(burst), clock
        self._tokens, self._at = float(burst), clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateLimitedLog:
    """Logs a warning per reason at most once per `every_s`, with how many were suppressed."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s, self._clock = every_s, clock
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._lock = threading.Lock()

    def warn(self, reason: str, message: str, *args) -> bool:
        """True when this call logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and now - last < self._every_s:
                self._suppressed[reason] += 1
                return False
            self._last[reason], suppressed = now, self._suppressed.pop(reason, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.warning(message + more, *args)
        return True


def parse_request(payload: bytes, max_bytes: int, station_id: str) -> tuple[ExplainRequestMessage | None, str, str]:
    """Validate one request payload: (message or None, rejection reason or "", detail for the log).
    Pure; never raises."""
    if len(payload) > max_bytes:
        return None, "too_large", f"{len(payload)} bytes > {max_bytes}"
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, "not_utf8", str(error)
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        return None, "malformed_json", str(error)[:120]
    if not isinstance(data, dict):
        return None, "not_object", type(data).__name__
    version = data.get("schema_version")
    if type(version) is not int or version != 1:
        return None, "unsupported_version", f"schema_version={str(version)[:20]!r}"
    try:
        message = ExplainRequestMessage.model_validate(data)
    except ValidationError as error:
        kinds = {e["type"] for e in error.errors()}
        reason = (
            "unknown_field" if "extra_forbidden" in kinds else "missing_field" if "missing" in kinds else "wrong_type"
        )
        return None, reason, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in error.errors())[:200]
    inspection_id = message.inspection_id
    if not _ID_FORM.fullmatch(inspection_id):
        return None, "bad_inspection_id", "not <station>-<source>-<capture ns>-<frame id>"
    prefix = f"{station_id}-"
    if not (inspection_id.startswith(prefix) and re.fullmatch(_ID_TAIL, inspection_id[len(prefix) :])):
        return message, "other_station", f"not an id of station {station_id}"
    return message, "", ""


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


class ExplainRequests:
    """Validates, counts, answers and forwards explanation requests to `explainer`.

    `publish(topic, payload) -> bool` sends a response (the MQTT sink's untracked QoS 0
    publish); it must not block.
    """

    def __init__(
        self,
        explainer: Explainer,
        station_id: str,
        topics: Topics,
        settings: MqttRequestSettings,
        publish: Callable[[str, bytes], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._explainer, self._station_id, self._topics, self._s = explainer, station_id, topics, settings
        self._publish = publish
        self._bucket = TokenBucket(settings.rate_per_s, settings.burst, clock)
        self._log = RateLimitedLog(settings.log_every_s, clock)
        self._lock = threading.Lock()  # guards the counters
        self._accepted = 0
        self._rejected: Counter[str] = Counter()
        self._response_failures = 0

    @property
    def topic(self) -> str:
        return self._topics.of("explain/request")

    @property
    def response_topic(self) -> str:
        return self._topics.of("explain/response")

    def handle(self, payload: bytes) -> str:
        """One request: returns "" when accepted, else the rejection reason. Never raises."""
        try:
            message, reason, detail = parse_request(payload, self._s.max_payload_bytes, self._station_id)
            if not reason and message is not None:
                outcome = self._explainer.request_outcome(
                    message.inspection_id, message.requested_by, admit=self._bucket.take
                )
                reason, detail = ("", "") if outcome == "queued" else (outcome, "")
        except Exception:  # noqa: BLE001 - an input must never break paho's network thread
            log.exception("explanation request handling failed")
            message, reason, detail = None, "internal_error", ""
        inspection_id = (
            message.inspection_id if message is not None and _ID_FORM.fullmatch(message.inspection_id) else None
        )
        with self._lock:
            if reason:
                self._rejected[reason] += 1
            else:
                self._accepted += 1
        if reason:
            self._log.warn(
                reason, "explanation request rejected (%s): %s; inspection_id=%s", reason, detail, inspection_id
            )
        else:
            log.info("explanation requested for %s by %s", inspection_id, message.requested_by or "?")
        self._respond(inspection_id, reason)
        return reason

    def stats(self) -> dict:
        """`explain_requests_accepted`, `explain_requests_rejected` {reason: n}, `explain_responses_failed`."""
        with self._lock:
            return {
                "explain_requests_accepted": self._accepted,
                "explain_requests_rejected": dict(self._rejected),
                "explain_responses_failed": self._response_failures,
            }

    def _respond(self, inspection_id: str | None, reason: str) -> None:
        response = ExplainResponseMessage(
            inspection_id=inspection_id,
            status="rejected" if reason else "accepted",
            reason=reason,
            station=self._topics.station,
            line=self._topics.line,
            published_at=iso_utc(time.time()),
        )
        try:
            sent = self._publish(self.response_topic, response.to_json_bytes())
        except Exception:  # noqa: BLE001 - a response is advisory
            sent = False
        if not sent:
            with self._lock:
                self._response_failures += 1
