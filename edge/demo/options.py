"""What `eiad edge demo` was asked for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoOptions:
    """What `eiad edge demo` was asked for. `frames` None: the video's length; `fps` None:
    the video's own rate, 0: as fast as the station takes frames."""

    artifact: Path
    line: Path
    out: Path
    frames: int | None = None
    fps: float | None = None
    explain: bool = False
    broker: str = "auto"
    overlays: int = 6
    progress: bool = True
    page: bool = True  # the operator's page, on 127.0.0.1:page_port
    page_port: int = 0  # 0: any free port (the URL is printed)
    keep_page: bool = False  # serve the page after the last part until Ctrl-C
