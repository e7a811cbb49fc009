"""The scoring of `eiad edge demo` (edge/demo/report.py) against values computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.demo.camera import LineFiles, Shots, truth_mask, truth_of
from edge.demo.live_view import Received
from edge.demo.recorder import Recorder
from edge.demo.report import iou, latency_summary, percentiles_ms, score_pixels
from eiad.line_goals import judge, score_image

OK, NG = {"label": "OK"}, {"label": "NG", "defect": "scratch"}


def _block(y1: int, y2: int, x1: int, x2: int, size: int = 4) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[y1:y2, x1:x2] = True
    return mask


def test_confusion_counts_give_accuracy_miss_and_overkill_rates():
    # given 5 OK parts (3 passed, 1 rejected as NG, 1 REJECTED) and 4 NG parts (2 caught,
    # 1 escaped, 1 REJECTED), plus 2 pairs that cannot be scored
    pairs = (
        [(OK, "OK")] * 3
        + [(OK, "NG"), (OK, "REJECTED")]
        + [(NG, "NG")] * 2
        + [(NG, "OK"), (NG, "REJECTED")]
        + [(None, "NG"), ({"label": "OK"}, "?")]
    )
    # when scored
    s = score_image(pairs)
    # then the counts land in the confusion table and the rates follow from them by hand
    assert s["confusion"] == {"OK": {"OK": 3, "NG": 1, "REJECTED": 1}, "NG": {"OK": 1, "NG": 2, "REJECTED": 1}}
    assert (s["scored"], s["unscored"], s["rejected"]) == (9, 2, 2)
    assert s["accuracy"] == 0.5556  # (3 + 2) / 9, a REJECTED part counts as wrong
    assert s["miss_rate"] == 0.25  # 1 escape / 4 NG parts
    assert s["overkill_rate"] == 0.2  # 1 good part thrown away / 5 OK parts


def test_rates_are_none_when_their_denominator_is_zero():
    # given only OK parts, all passed
    s = score_image([(OK, "OK"), (OK, "OK")])
    # then accuracy and overkill are defined, the miss rate (no NG parts) is not
    assert (s["accuracy"], s["overkill_rate"], s["miss_rate"]) == (1.0, 0.0, None)
    assert score_image([])["accuracy"] is None


def test_goals_judge_each_figure_and_fail_the_run_on_any_miss():
    # given a run right on three goals and one mask IoU short
    judged = judge({"accuracy": 0.97, "overkill_rate": 0.02, "miss_rate": 0.0, "mean_iou": 0.59})
    # then the bounds are inclusive and the IoU miss fails the run
    assert [g["met"] for g in judged["goals"].values()] == [True, True, True, False]
    assert judged["passed"] is False
    # a figure that was not measured (no mask scored) is not judged and does not fail it
    judged = judge({"accuracy": 0.99, "overkill_rate": 0.0, "miss_rate": 0.05})
    assert judged["goals"]["mean_iou"]["met"] is None and judged["passed"] is True
    assert judge({"accuracy": 0.96})["passed"] is False


def test_iou_of_small_masks():
    truth = _block(1, 3, 1, 3)  # 4 pixels
    # overlapping 2x2 blocks offset by one pixel: 1 shared pixel, 7 in the union
    assert iou(_block(0, 2, 0, 2).astype(np.uint8) * 255, truth) == pytest.approx(1 / 7)
    assert iou(truth.astype(np.uint8), truth) == 1.0
    assert iou(_block(0, 1, 0, 1).astype(np.uint8), truth) == 0.0  # disjoint
    assert iou(None, truth) == 0.0  # no published mask: the part scores 0
    assert iou(np.zeros((4, 4), np.uint8), np.zeros((4, 4), bool)) == 1.0  # both empty: nothing to disagree on


def test_iou_resizes_a_smaller_published_mask_to_the_truth():
    # given a 2x2 published mask with its top-left pixel set, and the 4x4 truth of that quarter
    published = np.array([[255, 0], [0, 0]], np.uint8)
    # then nearest-neighbour upscaling makes it the truth's top-left 2x2 block exactly
    assert iou(published, _block(0, 2, 0, 2)) == 1.0
    assert iou(published, _block(0, 2, 0, 4)) == 0.5


def test_pixel_scores_average_over_all_ng_parts_and_over_those_with_a_mask():
    truth = _block(1, 3, 1, 3)
    items = [(truth.astype(np.uint8), truth), (None, truth), (_block(0, 2, 0, 2).astype(np.uint8), truth)]
    s = score_pixels(items)
    assert (s["ng_parts"], s["with_mask"]) == (3, 2)
    assert s["mean_iou"] == round((1 + 0 + 1 / 7) / 3, 4) == 0.381
    assert s["mean_iou_with_mask"] == round((1 + 1 / 7) / 2, 4) == 0.5714
    assert score_pixels([]) == {"ng_parts": 0, "with_mask": 0, "mean_iou": None, "mean_iou_with_mask": None}


def test_percentiles_interpolate_linearly():
    # numpy's default: p95 of 1..5 sits at rank 0.95 * 4 = 3.8 -> 4 + 0.8 * (5 - 4)
    assert percentiles_ms([5.0, 1.0, 3.0, 2.0, 4.0]) == {
        "count": 5,
        "p50": 3.0,
        "p95": 4.8,
        "p99": 4.96,
        "max": 5.0,
        "mean": 3.0,
    }
    assert percentiles_ms([]) == {}


def test_latency_splits_capture_to_plc_into_stages():
    # given two results with stage stamps in ns; the second (REJECTED) skipped inference and never arrived
    ms = 1_000_000
    recorder = Recorder()
    recorder.results = {
        "a": {
            "frame_id": 0,
            "sequence": 1,
            "verdict": "OK",
            "stamps": {
                "captured": 0,
                "queued": 1 * ms,
                "dequeued": 3 * ms,
                "preprocessed": 4 * ms,
                "inferred": 6 * ms,
                "decided": 7 * ms,
                "outboxed": 9 * ms,
            },
        },
        "b": {
            "frame_id": 1,
            "sequence": 2,
            "verdict": "REJECTED",
            "stamps": {"captured": 0, "queued": 2 * ms, "dequeued": 2 * ms, "decided": 5 * ms, "outboxed": 6 * ms},
        },
    }
    received = Received(verdict_ns={"a": 12 * ms})
    # when summarised
    lat = latency_summary(recorder, received)
    # then capture -> PLC counts only the verdict that arrived, and the stages hold what each frame had
    assert lat["capture_to_plc"]["count"] == 1 and lat["capture_to_plc"]["p50"] == 12.0
    stages = lat["stages"]
    assert stages["capture"]["count"] == 2 and stages["capture"]["mean"] == 1.5
    assert stages["queue"]["max"] == 2.0 and stages["queue"]["mean"] == 1.0
    assert stages["inference"] == {"count": 1, "p50": 2.0, "p95": 2.0, "p99": 2.0, "max": 2.0, "mean": 2.0}
    assert stages["broker->PLC"]["count"] == 1 and stages["broker->PLC"]["p50"] == 3.0
    assert stages["sinks+outbox"]["count"] == 2 and stages["sinks+outbox"]["max"] == 2.0


def test_truth_of_and_a_box_only_truth_mask(tmp_path: Path):
    # given a line without mask files, whose NG record carries only a box
    line = LineFiles(tmp_path, tmp_path / "line.avi", tmp_path / "ground_truth.jsonl", {}, 10.0, (6, 4))
    shots = Shots(total=2, fps=0)
    shots.truth = [OK, {"label": "NG", "bbox_xyxy": [1, 0, 3, 2]}]
    # then the truth mask is the box, OK parts have none, and an unknown frame has no truth
    mask = truth_mask(truth_of(shots, 1), line)
    assert mask.shape == (4, 6) and mask.sum() == 4 and mask[0:2, 1:3].all()
    assert truth_mask(truth_of(shots, 0), line) is None
    assert truth_of(shots, 5) is None and truth_of(shots, -1) is None


def test_wrong_verdicts_are_counted_per_part_type():
    # given a line with two part types: one good pcb rejected, one defective brick passed
    pcb_ok, pcb_ng = {"label": "OK", "part": "pcb"}, {"label": "NG", "part": "pcb"}
    brick_ok, brick_ng = {"label": "OK", "part": "brick"}, {"label": "NG", "part": "brick"}
    pairs = [(pcb_ok, "OK"), (pcb_ok, "NG"), (pcb_ng, "NG"), (brick_ok, "OK"), (brick_ng, "OK"), (brick_ng, "NG")]
    # and parts not inspected (REJECTED): counted as parts, neither a false reject nor a miss
    pairs += [(pcb_ok, "REJECTED"), (brick_ng, "REJECTED")]
    # when scored
    by_part = score_image(pairs)["by_part"]
    # then each part type has its own counts, and the line names only the types with errors
    assert by_part == {
        "brick": {"good": 1, "false_rejects": 0, "defective": 3, "misses": 1},
        "pcb": {"good": 3, "false_rejects": 1, "defective": 1, "misses": 0},
    }
    from eiad.line_goals import format_errors_by_part

    assert format_errors_by_part(by_part) == (
        "brick 0 of 1 good rejected, 1 of 3 defective passed; pcb 1 of 3 good rejected, 0 of 1 defective passed"
    )
    assert format_errors_by_part(score_image([(pcb_ok, "OK")])["by_part"]) == "none"
    # records without a part type give no breakdown
    assert "by_part" not in score_image([(OK, "NG")])
