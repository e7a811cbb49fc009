"""What a PLC-like MQTT subscriber received, for tests that compare it with the line's truth."""

from __future__ import annotations

import json


def verdicts_by_frame(subscriber, count: int, timeout_s: float = 10.0) -> list[str]:
    """Wait for `count` verdicts, close the subscriber, return their verdicts in frame order."""
    try:
        assert subscriber.wait_for(lambda msgs: len(msgs) >= count, timeout_s), f"fewer than {count} verdicts"
        verdicts = [json.loads(m.payload) for m in subscriber.snapshot("/verdict")]
    finally:
        subscriber.close()
    return [v["verdict"] for v in sorted(verdicts, key=lambda v: v["frame_id"])]
