"""Small real InspectionResults for sink tests."""

from __future__ import annotations

import time

import numpy as np

from edge.results import InspectionResult, Region


def make_result(
    sequence: int, verdict: str = "NG", shape: tuple[int, int] = (64, 96), station: str = "st1"
) -> InspectionResult:
    """A result with a rectangular defect in its mask (NG) or an empty mask (OK)."""
    mask = np.zeros(shape, np.uint8)
    regions: tuple[Region, ...] = ()
    if verdict == "NG":
        mask[10:20, 30:50] = 255
        regions = (Region((30, 10, 50, 20), 200, 0.93),)
    t0 = time.monotonic_ns() - 6_000_000  # stages in the recent past
    return InspectionResult(
        inspection_id=f"{station}-{sequence:06d}",
        sequence=sequence,
        source_id="cam0",
        frame_id=sequence - 1,
        verdict=verdict,
        score=0.9 if verdict == "NG" else 0.1,  # type: ignore[arg-type]
        defect_class="scratch" if verdict == "NG" else None,
        class_confidence=0.8 if verdict == "NG" else 0.0,
        regions=regions,
        model_id="tiny-v1",
        captured_unix_s=time.time(),
        stamps_ns={"captured": t0, "preprocessed": t0 + 1_000_000, "inferred": t0 + 4_500_000},
        mask=mask if verdict != "REJECTED" else None,
        reason="" if verdict != "REJECTED" else "frame too dark",
    )
