"""The local archive sink: what it writes, rotation by count/bytes, counted drops."""

from __future__ import annotations

import json

import cv2
import numpy as np

from benchmarks.stand_ins.results import make_result
from edge.sinks.archive import ArchiveSettings, ArchiveSink


def files(root):
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def test_ng_results_are_archived_with_mask_image_and_json(tmp_path):
    sink = ArchiveSink(ArchiveSettings(directory=tmp_path, image_format="png"))
    image = np.full((64, 96, 3), 120, np.uint8)
    # when an OK and an NG result arrive
    sink.handle(make_result(1, "OK"), image)
    sink.handle(make_result(2, "NG"), image)
    sink.close()
    # then only the NG part is on disk, complete and readable
    names = files(tmp_path)
    assert names == ["000000002_st1-000002.json", "000000002_st1-000002.mask.png", "000000002_st1-000002.png"]
    meta = json.loads(next(tmp_path.rglob("*.json")).read_text())
    assert meta["inspection_id"] == "st1-000002" and meta["verdict"] == "NG"
    mask = cv2.imread(str(next(tmp_path.rglob("*.mask.png"))), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (64, 96) and int(mask.max()) == 255
    assert sink.stats()["written"] == 1


def test_rotation_keeps_the_newest_items_by_count_and_survives_restart(tmp_path):
    sink = ArchiveSink(ArchiveSettings(directory=tmp_path, max_items=3))
    for i in range(1, 6):
        sink.handle(make_result(i, "NG"))
    sink.close()
    assert sink.stats()["rotated"] == 2
    assert [n for n in files(tmp_path) if n.endswith(".json")] == [f"00000000{i}_st1-00000{i}.json" for i in (3, 4, 5)]
    # when a new run starts on the same directory, old items count toward the bound
    again = ArchiveSink(ArchiveSettings(directory=tmp_path, max_items=3))
    assert again.stats()["items"] == 3
    again.handle(make_result(6, "NG"))
    again.close()
    assert [n.split("_")[0] for n in files(tmp_path) if n.endswith(".json")] == ["000000004", "000000005", "000000006"]


def test_rotation_by_bytes(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)
    sink = ArchiveSink(ArchiveSettings(directory=tmp_path, image_format="png", max_bytes=40_000))
    for i in range(1, 9):
        sink.handle(make_result(i, "NG"), image)
    sink.close()
    total = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert total <= 40_000 and sink.stats()["rotated"] >= 1
    assert sink.stats()["bytes"] == total


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    sink = ArchiveSink(ArchiveSettings(directory=tmp_path, queue_size=1, image_format="png"))
    image = np.zeros((480, 640, 3), np.uint8)
    for i in range(1, 201):
        sink.handle(make_result(i, "NG"), image)
    sink.close(timeout_s=30)
    stats = sink.stats()
    assert stats["dropped_queue_full"] > 0
    assert stats["written"] + stats["dropped_queue_full"] == 200
