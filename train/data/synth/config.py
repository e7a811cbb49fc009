"""Configuration of the synthetic production line (validated once, no I/O)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from train.data.synth.catalog import DEFAULT_PARTS, PART_TYPES

# Bumped whenever the same seed would draw different pixels; recorded in synth_report.json.
GENERATOR_VERSION = 1


class SynthConfig(BaseModel):
    """What `generate_line` makes. Same config and seed -> byte-identical files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0, description="random seed for every image and the stream")
    image_size_px: int = Field(256, ge=64, le=2048, description="square image side in pixels")
    ok_per_part: int = Field(8, ge=0, le=100_000, description="defect-free images per part type")
    ng_per_defect: int = Field(4, ge=0, le=100_000, description="defective images per (part, defect)")
    parts: tuple[str, ...] = Field(DEFAULT_PARTS, min_length=1, description="part types to make")
    dataset_name: str = Field("SynthLine", pattern=r"^[A-Za-z0-9_-]+$", description="DDQA dataset folder")
    stream_frames: int = Field(60, ge=0, le=1_000_000, description="frames in stream/line.avi (0: no stream)")
    stream_codec: Literal["ffv1", "mjpg"] = Field("ffv1", description="ffv1 lossless or mjpg lossy")
    stream_fps: float = Field(10.0, gt=0, le=1000, description="frame rate written into the video")
    stream_ng_fraction: float = Field(0.2, ge=0.0, le=1.0, description="share of NG frames in the stream")
    sheet_examples: int = Field(1, ge=0, le=20, description="contact sheet examples per (part, class)")

    @field_validator("parts", mode="before")
    @classmethod
    def _split_parts(cls, value):
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("parts")
    @classmethod
    def _known_parts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in PART_TYPES]
        if unknown:
            raise ValueError(f"unknown part type(s) {unknown}; choose from {sorted(PART_TYPES)}")
        if len(set(value)) != len(value):
            raise ValueError(f"part types listed twice: {list(value)}")
        return value
