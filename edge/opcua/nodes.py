"""The vision system's per-result fields: the camera variables and the ResultReady event's fields."""

from __future__ import annotations

import datetime as dt

# The per-camera variables and the event's fields (besides BaseEventType's own), with their types.
FIELDS = (
    ("ResultId", "String"),
    ("CameraId", "String"),
    ("Sequence", "UInt64"),
    ("FrameId", "UInt64"),
    ("ResultState", "Int32"),
    ("Verdict", "String"),
    ("Score", "Double"),
    ("DefectClass", "String"),
    ("ClassConfidence", "Double"),
    ("RegionCount", "UInt32"),
    ("CaptureTime", "DateTime"),
    ("LatencyMs", "Double"),
    ("ModelId", "String"),
)


def field_value(fields: dict, name: str):
    """The value a variable or event field takes for one result (capture time as a UTC datetime)."""
    if name == "CaptureTime":
        return dt.datetime.fromtimestamp(fields["CaptureTimeUnixS"], dt.timezone.utc)
    return fields[name]


async def add_camera_variables(folder, idx: int, camera: str) -> dict:
    """`VisionSystem.Cameras.<camera>` with one variable per field (initial: the type's default)."""
    from asyncua import ua

    node = await folder.add_object(ua.NodeId(f"VisionSystem.Cameras.{camera}", idx), ua.QualifiedName(camera, idx))
    variables = {}
    for name, kind in FIELDS:
        variant_type = getattr(ua.VariantType, kind)
        initial = (
            dt.datetime.fromtimestamp(0, dt.timezone.utc) if kind == "DateTime" else ua.get_default_value(variant_type)
        )
        variables[name] = await node.add_variable(
            ua.NodeId(f"VisionSystem.Cameras.{camera}.{name}", idx),
            ua.QualifiedName(name, idx),
            initial,
            varianttype=variant_type,
        )
    return variables
