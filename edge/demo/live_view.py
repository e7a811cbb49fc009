"""What the PLC sees during `eiad edge demo`: a subscriber and a terminal view of its verdicts.

`PlcSubscriber` is a separate paho client, subscribed the way docs/mqtt.md tells a PLC
gateway to: fixed client id, persistent session (MQTT 5: clean_start False with a
session expiry; 3.1.1: clean_session False), QoS 1, de-duplication on
(inspection_id, kind). It stamps each arrival with `time.monotonic_ns()`, so in the
demo's single process capture -> verdict-received latency is exact.

`LiveView` draws a tqdm progress bar of verdicts received and prints one line per NG
verdict, at most `max_ng_lines_per_s` (the rest are counted and reported in one line), so
a fast line cannot flood the terminal.

Thread safety: paho calls `PlcSubscriber._on_message` from its network thread; every
read of the received data goes through `snapshot()`/`wait_for()` under its lock.
`LiveView` methods may be called from any thread (one lock).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import cv2
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tqdm import tqdm

from eiad.errors import PublishError
from eiad.messages import Topics

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 3600  # the broker keeps the PLC's queue this long while it is away


@dataclass
class Received:
    """Everything the subscriber got, keyed by inspection id (first copy wins)."""

    verdicts: dict[str, dict] = field(default_factory=dict)
    verdict_ns: dict[str, int] = field(default_factory=dict)  # monotonic arrival stamp
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    explanations: dict[str, dict] = field(default_factory=dict)
    duplicates: int = 0
    undecodable: int = 0


class PlcSubscriber:
    """Subscribes to a station's verdict, mask and explanation topics (QoS 1, persistent session)."""

    def __init__(
        self,
        host: str,
        port: int,
        protocol: str,
        topics: Topics,
        client_id: str = "eiad-demo-plc",
        on_verdict: Callable[[dict, int], None] | None = None,
    ) -> None:
        self._topics = topics
        self._v5 = protocol == "5"
        self._on_verdict = on_verdict
        self._lock = threading.Lock()
        self._data = Received()
        self.ready = threading.Event()
        kwargs = {} if self._v5 else {"clean_session": False}
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            **kwargs,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *args: self.ready.set()
        self._client.on_message = self._on_message
        self._host, self._port = host, port

    def start(self, timeout_s: float = 10.0) -> PlcSubscriber:
        """Connect and subscribe; PublishError when not subscribed within `timeout_s`."""
        if self._v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            self._client.connect(self._host, self._port, keepalive=30, clean_start=False, properties=props)
        else:
            self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not self.ready.wait(timeout_s):
            self.close()
            raise PublishError(
                f"the demo's PLC subscriber could not subscribe at {self._host}:{self._port} within {timeout_s:.0f} s"
            )
        return self

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        t = self._topics
        client.subscribe([(t.of("verdict"), 1), (t.of("mask"), 1), (t.of("mask") + "/+", 1), (t.of("explanation"), 1)])

    def _on_message(self, client, userdata, msg) -> None:
        now = time.monotonic_ns()
        try:
            kind, key, value = self._decode(msg)
        except (ValueError, KeyError, TypeError) as error:
            log.warning("PLC subscriber: undecodable message on %s: %s", msg.topic, error)
            with self._lock:
                self._data.undecodable += 1
            return
        with self._lock:
            store = {"verdict": self._data.verdicts, "mask": self._data.masks, "explanation": self._data.explanations}[
                kind
            ]
            if key in store:  # at-least-once delivery: a consumer de-duplicates
                self._data.duplicates += 1
                return
            store[key] = value
            if kind == "verdict":
                self._data.verdict_ns[key] = now
        if kind == "verdict" and self._on_verdict is not None:
            self._on_verdict(value, now)

    def _decode(self, msg) -> tuple[str, str, object]:
        base = self._topics.of("mask")
        if msg.topic == base or msg.topic.startswith(base + "/"):
            if msg.topic != base:
                inspection_id = msg.topic[len(base) + 1 :]  # MQTT 3.1.1: the id is in the topic
            else:
                user = dict(getattr(msg.properties, "UserProperty", None) or [])
                inspection_id = user["inspection_id"]
            mask = cv2.imdecode(np.frombuffer(msg.payload, np.uint8), cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise ValueError("mask payload is not a PNG")
            return "mask", inspection_id, mask
        payload = json.loads(msg.payload)
        kind = "explanation" if msg.topic == self._topics.of("explanation") else "verdict"
        return kind, str(payload["inspection_id"]), payload

    def wait_for(self, verdict_ids: set[str], mask_ids: set[str], timeout_s: float) -> tuple[int, int]:
        """Wait until those verdicts and masks arrived; returns (verdicts missing, masks missing)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                missing = (len(verdict_ids - self._data.verdicts.keys()), len(mask_ids - self._data.masks.keys()))
            if missing == (0, 0) or time.monotonic() >= deadline:
                return missing
            time.sleep(0.02)

    def wait_quiet(self, count: Callable[[Received], int], target: int, timeout_s: float) -> int:
        """Wait until `count(received) >= target` or the timeout; returns the count."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                value = count(self._data)
            if value >= target or time.monotonic() >= deadline:
                return value
            time.sleep(0.05)

    def snapshot(self) -> Received:
        with self._lock:
            d = self._data
            return Received(
                dict(d.verdicts), dict(d.verdict_ns), dict(d.masks), dict(d.explanations), d.duplicates, d.undecodable
            )

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class LiveView:
    """A progress bar of verdicts received plus throttled NG lines, on `stream` (stderr by default)."""

    def __init__(
        self, total: int, stream: TextIO | None = None, max_ng_lines_per_s: float = 4.0, enabled: bool = True
    ) -> None:
        self._bar = tqdm(
            total=total,
            desc="verdicts received",
            unit="part",
            file=stream,
            disable=not enabled,
            dynamic_ncols=True,
            leave=True,
        )
        self._stream = stream
        self._enabled = enabled
        self._min_gap_s = 1.0 / max_ng_lines_per_s if max_ng_lines_per_s > 0 else float("inf")
        self._last_line = 0.0
        self._held_back = 0
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def verdict(self, verdict: str, ng_line: str | None = None) -> None:
        """Count one received verdict; print `ng_line` unless lines are being throttled."""
        with self._lock:
            self._counts[verdict] = self._counts.get(verdict, 0) + 1
            if ng_line is not None:
                now = time.monotonic()
                if now - self._last_line >= self._min_gap_s:
                    if self._held_back:
                        ng_line += f"   (+{self._held_back} NG not shown)"
                        self._held_back = 0
                    self._write(ng_line)
                    self._last_line = now
                else:
                    self._held_back += 1
            self._bar.set_postfix({k: v for k, v in sorted(self._counts.items())}, refresh=False)
            self._bar.update(1)

    def _write(self, line: str) -> None:
        if self._enabled:
            tqdm.write(line, file=self._stream)

    def close(self) -> None:
        with self._lock:
            if self._held_back:
                self._write(f"(+{self._held_back} more NG not shown)")
                self._held_back = 0
            self._bar.close()
