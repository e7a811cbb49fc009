"""Station config -> source constructors. Implementations are imported when used."""

from __future__ import annotations

from collections.abc import Callable

from edge.sources.base import Source


def source_maker(config, resolve) -> Callable[[], Source]:
    """A zero-argument constructor for one source config (the watchdog calls it on each restart).

    `resolve(path)` turns config-relative paths into absolute ones.
    """
    kind = config.kind
    if kind in ("video", "usb", "rtsp"):
        from edge.sources.opencv_source import OpenCvSource

        if kind == "video":
            return lambda: OpenCvSource(config.id, str(resolve(config.path)), kind="video", loop=config.loop)
        if kind == "usb":
            return lambda: OpenCvSource(
                config.id,
                config.device,
                kind="usb",
                width_px=config.width_px,
                height_px=config.height_px,
                fps=config.fps,
            )
        return lambda: OpenCvSource(config.id, config.url, kind="rtsp", ffmpeg_options=config.ffmpeg_options)
    if kind == "folder":
        from edge.sources.folder import FolderSource

        move_to = resolve(config.move_done_to) if config.move_done_to else None
        seen: set[str] = set()  # a restarted folder source does not inspect a file twice
        return lambda: FolderSource(
            config.id,
            resolve(config.path),
            config.patterns,
            config.watch,
            config.settle_ms,
            config.poll_interval_ms,
            move_to,
            seen,
        )
    if kind == "synthetic":
        from edge.sources.synthetic import SyntheticLineSource

        truth = resolve(config.truth) if config.truth else None
        return lambda: SyntheticLineSource(config.id, resolve(config.path), truth, config.loop)
    if kind == "genicam":
        from edge.sources.genicam import GenicamSource

        return lambda: GenicamSource(
            config.id,
            resolve(config.cti),
            config.serial,
            config.trigger,
            config.trigger_source,
            config.exposure_us,
            config.fetch_timeout_s,
        )
    raise ValueError(f"unknown source kind {kind!r}")
