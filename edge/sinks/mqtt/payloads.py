"""Payloads of the MQTT sink (pure functions): the verdict message and the mask PNG.

Kept apart from the sink's threads and connection logic; `edge.sinks.mqtt.sink` re-exports
`build_verdict` and `stage_latencies_ms` (the archive sink and tests import them there).
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.results import InspectionResult
from eiad.messages import RegionPayload, VerdictMessage, iso_utc

# OpenCV's default PNG settings: measured here (OpenCV 5, 224x224 mask) 74 us, while an
# explicit IMWRITE_PNG_COMPRESSION of 1 took 380 us (it leaves OpenCV's fast path).
_PNG_PARAMS: list[int] = []


def stage_latencies_ms(stamps_ns: dict[str, int]) -> dict[str, float]:
    """Milliseconds from each stage to the next, by time order, plus 'total'."""
    items = sorted(stamps_ns.items(), key=lambda kv: kv[1])
    out = {name: round((t - prev_t) / 1e6, 3) for (_, prev_t), (name, t) in zip(items, items[1:])}
    if len(items) >= 2:
        out["total"] = round((items[-1][1] - items[0][1]) / 1e6, 3)
    return out


def build_verdict(
    r: InspectionResult,
    station: str,
    line: str,
    published_unix_s: float,
    stamps_ns: dict[str, int],
    mask_published: bool,
) -> VerdictMessage:
    """The verdict payload for one result (pure)."""
    return VerdictMessage(
        inspection_id=r.inspection_id,
        sequence=r.sequence,
        station=station,
        line=line,
        source_id=r.source_id,
        frame_id=r.frame_id,
        verdict=r.verdict,
        score=float(r.score),
        defect_class=r.defect_class,
        class_confidence=float(r.class_confidence),
        regions=[
            RegionPayload(
                box_xyxy=tuple(int(v) for v in g.box_xyxy), area_px=int(g.area_px), max_score=float(g.max_score)
            )
            for g in r.regions
        ],
        model_id=r.model_id,
        captured_at=iso_utc(r.captured_unix_s),
        published_at=iso_utc(published_unix_s),
        latency_ms=stage_latencies_ms(stamps_ns),
        mask_published=mask_published,
        reason=r.reason,
    )


def encode_mask(r: InspectionResult) -> bytes:
    """The result's mask as an 8-bit greyscale PNG (0 / 255); runs on the camera loop."""
    ok, png = cv2.imencode(".png", np.ascontiguousarray(r.mask, dtype=np.uint8), _PNG_PARAMS)
    if not ok:
        raise ValueError(f"PNG encoding of the mask of {r.inspection_id} failed")
    return png.tobytes()
