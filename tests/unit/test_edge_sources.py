"""Sources on real files: FFV1 video, synthetic line with sidecar, image folders (+ watch)."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from benchmarks.stand_ins.frames import line_frames, write_ffv1, write_synthetic_line
from edge.sources.base import IDLE
from edge.sources.folder import FolderSource
from edge.sources.genicam import GenicamSource, to_bgr
from edge.sources.opencv_source import OpenCvSource
from edge.sources.synthetic import SyntheticLineSource, read_truth
from eiad.errors import SourceError


def read_all(source, limit: int = 100) -> list:
    source.open()
    out = []
    try:
        while len(out) < limit and (capture := source.read()) is not None:
            out.append(capture)
    finally:
        source.close()
    return out


def test_video_file_delivers_every_frame_losslessly_then_ends(tmp_path):
    images, _ = line_frames(7)
    video = write_ffv1(tmp_path / "clip.mkv", images)
    captures = read_all(OpenCvSource("cam", str(video), kind="video"))
    assert len(captures) == 7
    assert all(np.array_equal(c.image, i) for c, i in zip(captures, images))


def test_looping_video_starts_again(tmp_path):
    images, _ = line_frames(3)
    video = write_ffv1(tmp_path / "clip.mkv", images)
    captures = read_all(OpenCvSource("cam", str(video), kind="video", loop=True), limit=8)
    assert len(captures) == 8 and np.array_equal(captures[3].image, images[0])


def test_missing_video_and_unopenable_stream_raise_source_error(tmp_path):
    with pytest.raises(SourceError, match="nope.mkv not found"):
        OpenCvSource("cam", str(tmp_path / "nope.mkv"), kind="video").open()
    (tmp_path / "junk.mkv").write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot open"):
        OpenCvSource("cam", str(tmp_path / "junk.mkv"), kind="video").open()


def test_synthetic_line_attaches_ground_truth_per_frame(tmp_path):
    video, truths = write_synthetic_line(tmp_path / "line", count=6)
    captures = read_all(SyntheticLineSource("line", video))
    assert [c.truth for c in captures] == truths
    assert captures[0].truth["label"] == "NG" and captures[0].image[10, 6].tolist() == [255, 255, 255]


def test_synthetic_sidecar_errors_name_file_and_line(tmp_path):
    video, _ = write_synthetic_line(tmp_path / "line", count=2)
    (tmp_path / "line" / "ground_truth.jsonl").write_text('{"frame": 0}\n{broken\n')
    with pytest.raises(SourceError, match=r"ground_truth.jsonl:2: not valid JSON"):
        SyntheticLineSource("line", video).open()
    (tmp_path / "line" / "ground_truth.jsonl").unlink()
    with pytest.raises(SourceError, match="sidecar .* not found"):
        SyntheticLineSource("line", video).open()


def test_sidecar_without_frame_keys_is_indexed_by_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"label": "OK"}\n\n{"label": "NG"}\n')
    assert read_truth(path) == {0: {"label": "OK"}, 1: {"label": "NG"}}


def test_folder_reads_images_in_name_order_and_passes_unreadable_as_empty(tmp_path):
    images, _ = line_frames(3)
    for i, image in enumerate(images):
        cv2.imwrite(str(tmp_path / f"img_{i:02d}.png"), image)
    (tmp_path / "img_99.png").write_bytes(b"half a png")
    (tmp_path / "notes.txt").write_text("ignored")
    captures = read_all(FolderSource("drop", tmp_path, patterns=["*.png"]))
    assert [c.truth["file"] for c in captures] == ["img_00.png", "img_01.png", "img_02.png", "img_99.png"]
    assert np.array_equal(captures[1].image, images[1]) and captures[3].image.size == 0


def test_watched_folder_waits_until_a_file_has_settled(tmp_path):
    inbox, done = tmp_path / "in", tmp_path / "done"
    inbox.mkdir()
    source = FolderSource(
        "drop", inbox, patterns=["*.png"], watch=True, settle_ms=600, poll_interval_ms=20, move_done_to=done
    )
    source.open()
    ok, encoded = cv2.imencode(".png", line_frames(1)[0][0])
    data = encoded.tobytes()
    # given a file still being written by the line PC
    path = inbox / "part1.png"
    path.write_bytes(data[: len(data) // 2])
    early = [source.read() for _ in range(3)]  # ~60 ms: far inside the settle time
    path.write_bytes(data)  # the copy completes
    completed = time.monotonic()
    capture = source.read()
    while capture is IDLE:
        capture = source.read()
    waited = time.monotonic() - completed
    source.close()
    # then it is read whole, only after it stopped changing for settle_ms, and moved out
    assert all(item is IDLE for item in early)
    assert capture.image.shape == (64, 64, 3) and waited >= 0.6
    assert not path.exists() and (done / "part1.png").exists()


def test_genicam_without_harvesters_says_how_to_install(tmp_path):
    try:
        import harvesters  # noqa: F401
    except ImportError:
        with pytest.raises(SourceError, match="pip install harvesters"):
            GenicamSource("gige", tmp_path / "p.cti").open()
    else:
        with pytest.raises(SourceError, match="p.cti not found"):
            GenicamSource("gige", tmp_path / "p.cti").open()


@pytest.mark.parametrize("fmt,channels", [("Mono8", 1), ("BayerRG8", 1), ("RGB8", 3), ("BGR8", 3)])
def test_genicam_pixel_formats_become_bgr(fmt, channels):
    data = np.arange(4 * 6 * channels, dtype=np.uint8)
    image = to_bgr(data, 6, 4, fmt)
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8
    if fmt == "RGB8":
        assert image[0, 0].tolist() == [2, 1, 0]
    with pytest.raises(SourceError, match="Mono16"):
        to_bgr(data, 6, 4, "Mono16")
