"""Video files, USB/V4L2 cameras and RTSP/TCP streams through `cv2.VideoCapture`.

RTSP: OpenCV's FFmpeg backend reads its options from the environment variable
`OPENCV_FFMPEG_CAPTURE_OPTIONS` at open time, and ignores `CAP_PROP_BUFFERSIZE`; so the
low-latency options (TCP transport, no input buffering) are set just before opening.
A hung `read()` is handled by the watchdog, not by a read timeout.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import cv2

from edge.sources.base import Capture
from eiad.errors import SourceError

log = logging.getLogger(__name__)

RTSP_LOW_LATENCY = "rtsp_transport;tcp|fflags;nobuffer|flags;low_delay"
_ENV_LOCK = threading.Lock()  # the env variable is process-wide: set and open as one step


class OpenCvSource:
    """One `cv2.VideoCapture`. `target` is a file path, a device index, or a stream URL.

    `loop=True` restarts a video file at its end (a demo "camera"); otherwise a file ends
    the source. A live device or stream that returns no frame raises SourceError so the
    worker reopens it.
    """

    def __init__(
        self,
        source_id: str,
        target: str | int,
        kind: str = "video",
        loop: bool = False,
        ffmpeg_options: str | None = None,
        width_px: int | None = None,
        height_px: int | None = None,
        fps: float | None = None,
    ) -> None:
        self.source_id = source_id
        self._target = target
        self._kind = kind
        self._loop = loop
        self._ffmpeg_options = ffmpeg_options
        self._props = {cv2.CAP_PROP_FRAME_WIDTH: width_px, cv2.CAP_PROP_FRAME_HEIGHT: height_px, cv2.CAP_PROP_FPS: fps}
        self._capture: cv2.VideoCapture | None = None
        # Releasing a VideoCapture while another thread is inside its read() crashes the
        # process (seen with FFmpeg streams). The reader holds this lock during read();
        # close() from another thread never waits on it: it leaves the release to the reader.
        self._reading = threading.Lock()
        self._closed = False

    def open(self) -> None:
        if self._kind == "video" and not Path(str(self._target)).is_file():
            raise SourceError(f"source {self.source_id}: video file {self._target} not found; check sources[].path")
        capture = self._open_capture()
        if not capture.isOpened():
            capture.release()
            raise SourceError(
                f"source {self.source_id}: OpenCV cannot open {self._kind} {self._target!r}; check the path/URL/device "
                "index and that the camera is connected"
            )
        for prop, value in self._props.items():
            if value is not None:
                capture.set(prop, float(value))
        self._capture = capture
        self._closed = False

    def _open_capture(self) -> cv2.VideoCapture:
        if self._kind == "usb":
            return cv2.VideoCapture(int(self._target))
        if self._kind == "rtsp":
            with _ENV_LOCK:
                previous = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
                os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = self._ffmpeg_options or RTSP_LOW_LATENCY
                try:
                    return cv2.VideoCapture(str(self._target), cv2.CAP_FFMPEG)
                finally:
                    if previous is None:
                        os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
                    else:
                        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = previous
        return cv2.VideoCapture(str(self._target))

    def read(self) -> Capture | None:
        with self._reading:
            capture = self._capture
            if capture is None or self._closed:
                raise SourceError(f"source {self.source_id} is closed")
            try:
                return self._read(capture)
            finally:
                if self._closed:  # closed by another thread while we were reading
                    self._release()

    def _read(self, capture: cv2.VideoCapture) -> Capture | None:
        ok, image = capture.read()
        if ok:
            return Capture(image=image)
        if self._kind == "video":
            if not self._loop:
                return None
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = capture.read()
            if ok:
                return Capture(image=image)
        raise SourceError(
            f"source {self.source_id}: no frame from {self._kind} {self._target!r} (camera gone or stream ended)"
        )

    def close(self) -> None:
        self._closed = True
        if self._reading.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._reading.release()
        # else: a read is in progress (maybe hung); the reader releases when it returns

    def _release(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()
