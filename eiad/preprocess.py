"""The preprocessing spec: how a camera image becomes the vision tower's input tensor.

Torch-free on purpose: export writes it into the artifact manifest and the edge applies
it (or the exported graph does), so train, export and edge agree on one definition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from eiad.errors import ConfigError

RESIZE_RULES = ("stretch",)
CHANNEL_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class PreprocessSpec:
    """Model input geometry and normalisation.

    A camera image is resized to `height` x `width` pixels by `resize` ("stretch": plain
    bilinear resize to the exact size, aspect ratio not kept), converted to `channel_order`,
    scaled to 0..1 and normalised per channel: `(x - mean) / std`.
    """

    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "stretch"
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ConfigError(f"preprocess: height/width must be positive, got {self.height}x{self.width}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"preprocess: mean/std need 3 values and std > 0, got {self.mean} / {self.std}")
        if self.resize not in RESIZE_RULES:
            raise ConfigError(f"preprocess: resize must be one of {RESIZE_RULES}, got {self.resize!r}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ConfigError(f"preprocess: channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        data = asdict(self)
        data["mean"] = [float(v) for v in self.mean]
        data["std"] = [float(v) for v in self.std]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        """Inverse of `to_dict`; raises ConfigError naming the missing or unknown key."""
        known = {"height", "width", "mean", "std", "resize", "channel_order"}
        unknown = set(data) - known
        missing = {"height", "width", "mean", "std"} - set(data)
        if unknown or missing:
            raise ConfigError(f"preprocess spec: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
        return cls(
            height=int(data["height"]),
            width=int(data["width"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            resize=str(data.get("resize", "stretch")),
            channel_order=str(data.get("channel_order", "RGB")),
        )
