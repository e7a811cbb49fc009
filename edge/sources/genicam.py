"""GenICam / GigE Vision / USB3 Vision cameras through `harvesters` (optional extra).

Needs `pip install harvesters` and the camera vendor's GenTL producer (.cti file).
Trigger: `hardware` waits for the line's trigger input (`trigger_source`, e.g. Line0);
`software` fires TriggerSoftware before each fetch (free-running at the loop's pace);
`off` lets the camera stream. A fetch that times out returns IDLE (a line standing still
is not a dead camera); any other GenTL error raises SourceError and the worker reopens.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from edge.sources.base import IDLE, Capture
from eiad.errors import SourceError

log = logging.getLogger(__name__)

_BAYER = {
    "BayerRG8": cv2.COLOR_BayerRG2BGR,
    "BayerGR8": cv2.COLOR_BayerGR2BGR,
    "BayerBG8": cv2.COLOR_BayerBG2BGR,
    "BayerGB8": cv2.COLOR_BayerGB2BGR,
}


def harvester_class():
    """`harvesters.core.Harvester`, or SourceError saying how to install it."""
    try:
        from harvesters.core import Harvester
    except ImportError as error:
        raise SourceError(
            "GenICam sources need the 'harvesters' package: pip install harvesters (and the vendor's GenTL .cti)"
        ) from error
    return Harvester


def to_bgr(data: np.ndarray, width: int, height: int, pixel_format: str) -> np.ndarray:
    """A GenTL buffer component as HxWx3 uint8 BGR (a copy: the buffer goes back to the pool)."""
    if pixel_format == "Mono8":
        return cv2.cvtColor(data.reshape(height, width), cv2.COLOR_GRAY2BGR)
    if pixel_format in _BAYER:
        return cv2.cvtColor(data.reshape(height, width), _BAYER[pixel_format])
    if pixel_format == "RGB8":
        return cv2.cvtColor(data.reshape(height, width, 3), cv2.COLOR_RGB2BGR)
    if pixel_format == "BGR8":
        return data.reshape(height, width, 3).copy()
    raise SourceError(f"pixel format {pixel_format} is not supported; set the camera to Mono8, BayerXX8, RGB8 or BGR8")


class GenicamSource:
    def __init__(
        self,
        source_id: str,
        cti: Path,
        serial: str | None = None,
        trigger: str = "hardware",
        trigger_source: str = "Line0",
        exposure_us: float | None = None,
        fetch_timeout_s: float = 1.0,
    ) -> None:
        self.source_id = source_id
        self._cti = Path(cti)
        self._serial = serial
        self._trigger = trigger
        self._trigger_source = trigger_source
        self._exposure_us = exposure_us
        self._timeout_s = fetch_timeout_s
        self._harvester = None
        self._acquirer = None

    def open(self) -> None:
        harvester = harvester_class()()
        if not self._cti.is_file():
            raise SourceError(f"source {self.source_id}: GenTL producer {self._cti} not found; set sources[].cti")
        harvester.add_file(str(self._cti))
        harvester.update()
        if not harvester.device_info_list:
            harvester.reset()
            raise SourceError(
                f"source {self.source_id}: no GenICam camera found through {self._cti}; check cabling and network"
            )
        self._harvester = harvester
        self._acquirer = harvester.create({"serial_number": self._serial} if self._serial else 0)
        self._configure(self._acquirer.remote_device.node_map)
        self._acquirer.start()

    def _configure(self, node_map) -> None:
        if self._trigger == "off":
            node_map.TriggerMode.value = "Off"
        else:
            node_map.TriggerSelector.value = "FrameStart"
            node_map.TriggerMode.value = "On"
            node_map.TriggerSource.value = "Software" if self._trigger == "software" else self._trigger_source
        if self._exposure_us is not None:
            node_map.ExposureTime.value = float(self._exposure_us)

    def read(self) -> Capture | None:
        acquirer = self._acquirer
        if acquirer is None:
            raise SourceError(f"source {self.source_id} is closed")
        if self._trigger == "software":
            acquirer.remote_device.node_map.TriggerSoftware.execute()
        try:
            with acquirer.fetch(timeout=self._timeout_s) as buffer:
                component = buffer.payload.components[0]
                image = to_bgr(component.data, component.width, component.height, component.data_format)
        except Exception as error:
            if "Timeout" in type(error).__name__:
                return IDLE
            raise SourceError(f"source {self.source_id}: GenTL fetch failed: {error}") from error
        return Capture(image=image)

    def close(self) -> None:
        acquirer, self._acquirer = self._acquirer, None
        harvester, self._harvester = self._harvester, None
        try:
            if acquirer is not None:
                acquirer.stop()
                acquirer.destroy()
        finally:
            if harvester is not None:
                harvester.reset()
