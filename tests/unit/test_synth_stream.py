"""The camera stream of the synthetic line: a real video file read back with OpenCV."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from train.data.synth import SynthConfig, generate_line
from train.data.synth.parts import STREAM_DOMAIN, render_pair, sample_rng
from train.data.synth.stream import bbox_xyxy

FRAMES = 20


def _frames(video: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    assert capture.isOpened(), video
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def _config(codec: str) -> SynthConfig:
    # no dataset images: only the stream is generated
    return SynthConfig(
        seed=5, image_size_px=80, ok_per_part=0, ng_per_defect=0, stream_frames=FRAMES, stream_codec=codec
    )


@pytest.fixture(scope="module")
def ffv1_line(tmp_path_factory):
    out = tmp_path_factory.mktemp("stream") / "line"
    report = generate_line(_config("ffv1"), out, progress=False)
    records = [json.loads(line) for line in (out / "stream" / "ground_truth.jsonl").read_text().splitlines()]
    return out, report, records


def test_ffv1_stream_has_every_frame_at_the_right_size(ffv1_line):
    out, report, records = ffv1_line
    frames = _frames(out / "stream" / "line.avi")
    assert len(frames) == FRAMES == len(records) == report.stream.frames
    assert all(frame.shape == (80, 80, 3) for frame in frames)
    assert [r["frame_index"] for r in records] == list(range(FRAMES))


def test_ffv1_frames_equal_the_rendered_ground_truth(ffv1_line):
    # given the lossless stream, then each frame is exactly the rendering its record names
    out, _, records = ffv1_line
    for frame, record in zip(_frames(out / "stream" / "line.avi"), records):
        rng = sample_rng(5, STREAM_DOMAIN, record["part"], record["defect"], record["frame_index"])
        pair = render_pair(rng, record["part"], record["defect"], 80)
        assert np.array_equal(frame, pair.image), record["frame_index"]


def test_ground_truth_agrees_with_its_masks(ffv1_line):
    out, report, records = ffv1_line
    ng = [r for r in records if r["label"] == "NG"]
    assert len(ng) == round(FRAMES * 0.2) == report.stream.ng_frames
    for record in records:
        assert set(record) >= {"frame_index", "part", "label", "defect", "bbox_xyxy", "defect_area_px", "mask"}
        if record["label"] == "OK":
            assert record["defect"] is None and record["mask"] is None and record["bbox_xyxy"] is None
            assert record["defect_area_px"] == 0
            continue
        mask = cv2.imread(str(out / "stream" / record["mask"]), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (80, 80) and set(np.unique(mask)) == {0, 255}
        assert record["defect_area_px"] == int((mask > 0).sum()) > 0
        x1, y1, x2, y2 = record["bbox_xyxy"]
        assert record["bbox_xyxy"] == bbox_xyxy(mask)
        assert (mask[y1:y2, x1:x2] > 0).sum() == record["defect_area_px"]  # box holds all of it
        assert mask[y1, x1:x2].any() and mask[y2 - 1, x1:x2].any()  # and is tight
    assert sorted(p.name for p in (out / "stream" / "masks").iterdir()) == sorted(Path(r["mask"]).name for r in ng)


def test_mjpg_stream_is_readable_but_lossy(tmp_path):
    out = tmp_path / "mjpg"
    generate_line(_config("mjpg"), out, progress=False)
    frames = _frames(out / "stream" / "line.avi")
    assert len(frames) == FRAMES and frames[0].shape == (80, 80, 3)
    first = json.loads((out / "stream" / "ground_truth.jsonl").read_text().splitlines()[0])
    pair = render_pair(
        sample_rng(5, STREAM_DOMAIN, first["part"], first["defect"], 0), first["part"], first["defect"], 80
    )
    difference = np.abs(frames[0].astype(int) - pair.image.astype(int))
    assert 0 < difference.mean() < 20  # close to the truth, not equal


def test_bbox_of_an_empty_mask_is_none():
    assert bbox_xyxy(np.zeros((8, 8), np.uint8)) is None
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 5] = 255
    assert bbox_xyxy(mask) == [5, 2, 6, 4]
