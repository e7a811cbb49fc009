"""What inspecting one frame produces; the sinks turn it into messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Region:
    """One connected defect region of the thresholded anomaly map, in input-image pixels."""

    box_xyxy: tuple[int, int, int, int]
    area_px: int
    max_score: float


@dataclass(frozen=True)
class InspectionResult:
    """The verdict for one frame.

    `inspection_id` is unique per station and stable across retries and restarts
    (consumers de-duplicate on it); `sequence` counts results per station from 1 with no
    gaps. `mask` is HxW uint8 (255 = defect) at the frame's size, or None when the verdict
    is REJECTED (the frame could not be inspected; `reason` says why). `features` holds the
    vision tokens for the explainer (not published).
    """

    inspection_id: str
    sequence: int
    source_id: str
    frame_id: int
    verdict: Literal["OK", "NG", "REJECTED"]
    score: float
    defect_class: str | None
    class_confidence: float
    regions: tuple[Region, ...]
    model_id: str
    captured_unix_s: float
    stamps_ns: dict[str, int] = field(default_factory=dict)
    mask: np.ndarray | None = None
    reason: str = ""
    features: np.ndarray | None = None
    cpu_ns: dict[str, int] = field(default_factory=dict)  # CPU time per stage outside the model (not published)
