"""`eiad edge run` as a real process: finite source to the end, SIGTERM on a live one;
and a live TCP stream (ffmpeg) that disappears and comes back, restarted by the watchdog."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmarks.stand_ins.frames import write_synthetic_line
from edge.health.metrics import Metrics
from edge.pipeline import Pipeline
from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
from edge.sources.opencv_source import OpenCvSource
from edge.sources.watchdog import SourceSet
from tests.support.mosquitto import free_port
from tests.support_edge.fakes import CollectingSink
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]

STATION = """\
station_id: st-9
line_id: line-b
artifact: artifact
sources:
  - {{kind: synthetic, id: line, path: line/line.mkv, loop: {loop}}}
metrics: {{host: 127.0.0.1, port: 0}}
archive: {{directory: archive, save: ng, image_format: png}}
sequence_file: null
"""


def station_dir(tmp_path: Path, artifact: Path, loop: bool) -> Path:
    shutil.copytree(artifact, tmp_path / "artifact")
    write_synthetic_line(tmp_path / "line", count=9)
    path = tmp_path / "station.yaml"
    path.write_text(STATION.format(loop=str(loop).lower()))
    return path


def eiad(*args: str) -> list[str]:
    return [sys.executable, "-m", "commands.main", *args]


def test_edge_run_processes_a_finite_source_and_exits_0(tmp_path, tiny_artifact):
    config = station_dir(tmp_path, tiny_artifact, loop=False)
    done = subprocess.run(
        eiad("edge", "run", "--config", str(config)), capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "9 results (NG 3, OK 6)" in done.stdout and "last sequence 9" in done.stdout
    # the archive sink got the NG frames' images: 3 items of json + image + mask
    archived = sorted(p.name for p in (tmp_path / "archive").rglob("*") if p.is_file())
    assert len([n for n in archived if n.endswith(".json")]) == 3
    assert len([n for n in archived if n.endswith(".mask.png")]) == 3 and len(archived) == 9


def test_sigterm_finishes_in_flight_frames_and_exits_cleanly(tmp_path, tiny_artifact):
    config = station_dir(tmp_path, tiny_artifact, loop=True)
    process = subprocess.Popen(
        eiad("edge", "run", "--config", str(config)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        seen = ""
        while "running" not in seen and time.monotonic() < deadline:  # wait for start-up
            seen += process.stderr.readline()
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, (seen + err)[-3000:]
    assert "SIGTERM received" in seen + err
    frames = int(out.split(" results")[0])
    assert frames > 9  # the looping video kept going until the signal
    assert f"last sequence {frames}" in out


def _ffmpeg_stream(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x64:rate=25",
            "-c:v",
            "mpeg2video",
            "-f",
            "mpegts",
            f"tcp://127.0.0.1:{port}?listen=1",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_a_stream_that_disappears_is_restarted_by_the_watchdog(tiny_artifact):
    # given a live TCP stream read as a free-running camera
    # (ffmpeg's listen=1 serves one client: start it first so the first connect succeeds;
    # the stall budget covers FFmpeg's ~1 s stream probing at open)
    port = free_port()
    streamer = _ffmpeg_stream(port)
    time.sleep(1.0)
    metrics = Metrics()
    sources = SourceSet(events=metrics, check_interval_s=0.1)
    sources.add(
        "live",
        lambda: OpenCvSource("live", f"tcp://127.0.0.1:{port}", kind="rtsp"),
        policy="latest",
        queue_capacity=2,
        staleness_budget_ms=1000,
        stall_timeout_s=3.0,
        backoff_initial_s=0.3,
        backoff_max_s=1.0,
    )
    sink = CollectingSink()
    pipeline = Pipeline("st", sources, OnnxRuntimeRunner(tiny_artifact), {"c": sink}, wrong_size="resize")
    stop = threading.Event()
    loop = threading.Thread(target=pipeline.run, args=(stop,))
    loop.start()
    try:
        assert _wait(lambda: len(sink.results) >= 10, 20), "no frames from the live stream"
        # when the camera disappears for a while and comes back
        streamer.kill()
        streamer.wait()
        time.sleep(1.5)
        before = len(sink.results)
        streamer = _ffmpeg_stream(port)
        # then the watchdog reopened it and frames flow again
        assert _wait(lambda: len(sink.results) >= before + 10, 30), "the source was not restarted"
    finally:
        stop.set()
        loop.join(10)
        streamer.kill()
        streamer.wait()
    restarts = metrics.count("restarts", "live/error") + metrics.count("restarts", "live/stall")
    assert restarts >= 1
    ids = [r.frame_id for r in sink.results]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
