"""The recent results the OPC UA server can hand out: bounded, with handles a client holds
until it releases them (OPC 40100-1 GetResultById / ReleaseResultHandle)."""

from __future__ import annotations

from collections import OrderedDict

from edge.results import InspectionResult

# ResultState values in the events and the result variables (OPC 40100-1 leaves their meaning
# to the system; > 0 is a valid result): 1 OK, 2 NG; 0 the part could not be inspected.
RESULT_STATE = {"OK": 1, "NG": 2, "REJECTED": 0}
# Error codes of the methods: 0 OK; 1 unknown result id (never seen or pushed out of the store);
# 2 unknown handle; 3 too many handles held (release some).
ERR_OK, ERR_UNKNOWN_ID, ERR_UNKNOWN_HANDLE, ERR_TOO_MANY_HANDLES = 0, 1, 2, 3


def result_fields(result: InspectionResult) -> dict:
    """One result as the server publishes it (names are the OPC UA browse names)."""
    stamps = result.stamps_ns
    latency = (stamps["decided"] - stamps["captured"]) / 1e6 if {"decided", "captured"} <= stamps.keys() else -1.0
    return {
        "ResultId": result.inspection_id,
        "CameraId": result.source_id,
        "Sequence": int(result.sequence),
        "FrameId": int(result.frame_id),
        "ResultState": RESULT_STATE[result.verdict],
        "Verdict": result.verdict,
        "Score": float(result.score),
        "DefectClass": result.defect_class or "",
        "ClassConfidence": float(result.class_confidence),
        "RegionCount": len(result.regions),
        "Regions": [[*r.box_xyxy, r.area_px] for r in result.regions],
        "CaptureTimeUnixS": float(result.captured_unix_s),
        "LatencyMs": round(float(latency), 3),
        "ModelId": result.model_id,
        "Reason": result.reason,
    }


class ResultStore:
    """Not thread-safe: used on the server's event loop only."""

    def __init__(self, size: int, max_handles: int) -> None:
        self._size, self._max_handles = size, max_handles
        self._recent: OrderedDict[str, dict] = OrderedDict()
        self._held: OrderedDict[int, dict] = OrderedDict()
        self._next_handle = 1

    def add(self, fields: dict) -> None:
        self._recent[fields["ResultId"]] = fields
        while len(self._recent) > self._size:
            self._recent.popitem(last=False)

    def get(self, result_id: str) -> tuple[dict | None, int, int]:
        """(result, handle, error). A handle keeps the result readable until released."""
        found = self._recent.get(result_id)
        if found is None:
            return None, 0, ERR_UNKNOWN_ID
        if len(self._held) >= self._max_handles:
            return found, 0, ERR_TOO_MANY_HANDLES
        handle = self._next_handle
        self._next_handle += 1
        self._held[handle] = found
        return found, handle, ERR_OK

    def release(self, handle: int) -> int:
        return ERR_OK if self._held.pop(handle, None) is not None else ERR_UNKNOWN_HANDLE

    @property
    def held(self) -> int:
        return len(self._held)
