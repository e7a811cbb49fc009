"""The scripts that record the model's quality: ablation rows, the demo's figures."""

import json

from benchmarks import ablation, demo_quality


def test_ablation_rows_add_one_change_each_to_the_row_above():
    first, last = ablation.settings_of(0), ablation.settings_of(len(ablation.ROWS) - 1)
    # the first row is the module before the changes; the last has every change on
    assert first == ablation.BEFORE
    assert last["fine"] and last["class_maps"] and last["context"] and last["skeleton_weight"] == 1.0
    for row in range(1, len(ablation.ROWS)):
        changed = {k for k in first if ablation.settings_of(row)[k] != ablation.settings_of(row - 1)[k]}
        assert changed == set(ablation.ROWS[row][1]), row


def test_demo_quality_records_the_test_split_and_the_stream(tmp_path):
    # given a demo folder as 'make demo' leaves it
    demo = tmp_path / "demo_out"
    report = {
        "images": 10,
        "defective_images": 4,
        "verdicts": {"accuracy": 0.9, "miss_rate": 0.25, "overkill_rate": 0.0},
        "image_auroc": 0.95,
        "pixel_auroc": 0.97,
        "aupro": 0.91,
        "aupro_by_defect": {"crack": 0.9},
        "mask_iou": 0.6,
        "mean_iou_defective": 0.58,
        "class_accuracy": 0.8,
        "per_class": {"crack": {"precision": 1.0, "recall": 0.5, "support": 4}},
        "class_publishing": {"cutoff": 0.6, "published_share": 0.5, "published_accuracy": 1.0},
    }
    (demo / "train" / "localization").mkdir(parents=True)
    (demo / "train" / "localization" / "metrics.json").write_text(
        json.dumps({"test": report, "thresholds": {"calibration": "image: at most 1.00% of 6 good parts rejected"}})
    )
    (demo / "edge").mkdir()
    confusion = {"OK": {"OK": 238, "NG": 2, "REJECTED": 0}, "NG": {"OK": 10, "NG": 50, "REJECTED": 0}}
    summary = {
        "artifact": {"model_id": "tiny@step1"},
        "line": {"frames_in_video": 300, "path": "demo_out/line/stream"},
        "broker": {"kind": "mosquitto", "detail": "/usr/sbin/mosquitto", "mqtt": 5},
        "frames": 300,
        "frames_requested": 300,
        "verdicts_received": 300,
        "all_received": True,
        "received": {"duplicates_dropped": 0},
        "throughput_fps": 30.0,
        "fps_target": 30.0,
        "late_triggers": 0,
        "elapsed_s": 10.0,
        "latency_ms": {"capture_to_plc": {"p50": 9.0, "p95": 15.0, "p99": 20.0}, "stages": {}},
        "accuracy": {
            "image": {
                "accuracy": 0.96,
                "miss_rate": 0.167,
                "overkill_rate": 0.008,
                "scored": 300,
                "rejected": 0,
                "confusion": confusion,
            },
            "pixel": {"mean_iou": 0.5, "ng_parts": 60, "mean_iou_with_mask": 0.6, "with_mask": 50},
            "class_agreement": 0.75,
            "class_unknown": 0.1,
        },
        "quality": {"goals": {"accuracy": {"goal": "accuracy >= 0.97", "value": 0.96, "met": False}}, "passed": False},
        "explanations": {"enabled": False},
        "overlays": [],
    }
    (demo / "edge" / "summary.json").write_text(json.dumps(summary))
    for folder, seconds in (
        ("line", 18.0),
        ("ddqa", 1.0),
        ("train", 400.0),
        ("merged", 0.2),
        ("artifact", 17.0),
        ("edge", 11.0),
    ):
        (demo / folder).mkdir(exist_ok=True)
        (demo / folder / ".eiad-demo-step.json").write_text(json.dumps({"summary": "ok", "seconds": seconds}))
    # when recorded
    out = tmp_path / "out"
    assert demo_quality.main([str(demo), "--out", str(out)]) == 0
    # then the goals are judged and the first run's time is the sum of its steps
    result = json.loads((out / "result.json").read_text())
    assert result["model_goals"]["aupro"]["met"] is True and result["model_goals"]["class_accuracy"]["met"] is False
    assert result["first_run_s"] == 447.2 and result["stream"]["quality"]["passed"] is False
    text = (out / "report.md").read_text()
    assert "quality goals MISSED" in text and "class accuracy >= 0.9: MISSED" in text
    # and the station's own summary is kept as the terminal showed it
    station = (out / "edge_summary.txt").read_text()
    assert "accuracy 96.0 %  miss rate 16.7 %" in station and "  NG                 10     50      0" in station


def test_retime_times_every_kept_engine_again_and_keeps_the_training_figures(tmp_path):
    from benchmarks.stand_ins.artifact import build_tiny_artifact

    # given the --keep folder of a two-row run whose engines were timed on a busy machine
    keep = tmp_path / "keep"
    for row in (0, 1):
        build_tiny_artifact(keep / f"row{row}" / "artifact")
        figures = {k: 0.5 for k in ablation.FIGURES}
        (keep / f"row{row}.json").write_text(
            json.dumps(
                {"row": row, "name": f"row {row}", "engine_ms": 999.0, "aupro_by_defect": {"crack": 0.5}, **figures}
            )
        )
    out = tmp_path / "out"
    out.mkdir()
    meta = {"max_steps": 1, "seed": 0, "split": "s", "command": "python -m benchmarks.ablation d", "machine": "m"}
    (out / "result.json").write_text(json.dumps({"meta": meta, "rows": []}))
    # when re-timed
    assert ablation.main(["d", "--rows", "0,1", "--keep", str(keep), "--retime", "--out", str(out)]) == 0
    # then both engines have new, plausible times; the training figures and the first command stay
    result = json.loads((out / "result.json").read_text())
    assert [r["engine_ms"] < 999.0 for r in result["rows"]] == [True, True]
    assert result["rows"][1]["accuracy"] == 0.5 and result["meta"]["command"] == "python -m benchmarks.ablation d"
    assert "--retime" in result["meta"]["engine_ms_by"] and "timed again" in (out / "report.md").read_text()
