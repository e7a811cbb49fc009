"""`eiad edge demo`: the synthetic line through a real artifact to a real local broker and
a PLC subscriber, scored against the line's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.stand_ins.artifact import build_tiny_artifact
from benchmarks.stand_ins.frames import line_frames, write_ffv1
from commands.main import main
from edge.sinks.mqtt.broker import mosquitto_binary, start_broker


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return build_tiny_artifact(tmp_path_factory.mktemp("artifact"))


@pytest.fixture(scope="module")
def patch_line(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A line in `eiad data synth`'s layout whose defects the tiny model sees exactly:
    grey parts, every third with a white patch (its mask is the patch)."""
    root = tmp_path_factory.mktemp("patch_line")
    stream = root / "stream"
    (stream / "masks").mkdir(parents=True)
    images, boxes = line_frames(12, every_ng=3)
    write_ffv1(stream / "line.avi", images, fps=10.0)
    records = []
    for i, box in enumerate(boxes):
        record = {
            "frame_index": i,
            "time_s": i / 10,
            "part": "grey",
            "label": box["label"],
            "defect": box.get("defect"),
            "bbox_xyxy": box.get("box_xyxy"),
            "defect_area_px": 0,
            "mask": None,
        }
        if box["label"] == "NG":
            x1, y1, x2, y2 = box["box_xyxy"]
            mask = np.zeros((64, 64), np.uint8)
            mask[y1:y2, x1:x2] = 255
            cv2.imwrite(str(stream / f"masks/{i:06d}.png"), mask)
            record.update(mask=f"masks/{i:06d}.png", defect_area_px=int((mask > 0).sum()))
        records.append(record)
    (stream / "ground_truth.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root, records


@pytest.fixture(scope="module")
def synth_line(tmp_path_factory) -> Path:
    """A real `eiad data synth` line (textured parts, six defect types), small and short."""
    from train.data.synth.config import SynthConfig
    from train.data.synth.generate import generate_line

    out = tmp_path_factory.mktemp("synth") / "line"
    config = SynthConfig(
        image_size_px=64, ok_per_part=0, ng_per_defect=0, stream_frames=12, stream_ng_fraction=0.5, sheet_examples=0
    )
    generate_line(config, out, progress=False)
    return out


def _demo(artifact: Path, line: Path, out: Path, *extra: str) -> tuple[int, dict | None]:
    code = main(
        [
            "-q",
            "edge",
            "demo",
            "--artifact",
            str(artifact),
            "--line",
            str(line),
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ]
    )
    summary = out / "summary.json"
    return code, json.loads(summary.read_text()) if summary.is_file() else None


def _assert_consistent(summary: dict) -> None:
    """Rates in summary.json follow from its own confusion counts."""
    image = summary["accuracy"]["image"]
    c = image["confusion"]
    scored = sum(c["OK"].values()) + sum(c["NG"].values())
    assert image["scored"] == scored == summary["verdicts_received"]
    assert image["accuracy"] == pytest.approx((c["OK"]["OK"] + c["NG"]["NG"]) / scored, abs=1e-4)
    if sum(c["NG"].values()):
        assert image["miss_rate"] == pytest.approx(c["NG"]["OK"] / sum(c["NG"].values()), abs=1e-4)
    if sum(c["OK"].values()):
        assert image["overkill_rate"] == pytest.approx(c["OK"]["NG"] / sum(c["OK"].values()), abs=1e-4)
    assert sum(summary["verdicts_by_kind"].values()) == summary["verdicts_received"]
    total = summary["latency_ms"]["capture_to_plc"]
    assert total["count"] == summary["verdicts_received"]
    assert 0 < total["p50"] <= total["p95"] <= total["p99"] <= total["max"]
    assert summary["latency_ms"]["stages"]["inference"]["p50"] < total["p99"]


@pytest.mark.mqtt
def test_demo_with_mosquitto_scores_a_line_the_model_sees_exactly(artifact, patch_line, tmp_path):
    line, records = patch_line
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: apt-get install mosquitto (.ci/run does this)")
    # given a line whose white patches the tiny model finds pixel for pixel
    # when the demo runs it through Mosquitto as fast as the station goes
    code, summary = _demo(artifact, line, tmp_path / "out", "--broker", "mosquitto", "--fps", "0")
    # then the PLC received one verdict per frame and every score is perfect
    assert code == 0
    assert summary["broker"]["kind"] == "mosquitto" and summary["broker"]["mqtt"] == "5"
    assert summary["frames"] == summary["verdicts_received"] == 12 and summary["all_received"]
    ng = sum(r["label"] == "NG" for r in records)
    image = summary["accuracy"]["image"]
    assert image["confusion"] == {
        "OK": {"OK": 12 - ng, "NG": 0, "REJECTED": 0},
        "NG": {"OK": 0, "NG": ng, "REJECTED": 0},
    }
    assert (image["accuracy"], image["miss_rate"], image["overkill_rate"]) == (1.0, 0.0, 0.0)
    assert summary["accuracy"]["pixel"] == {"ng_parts": ng, "with_mask": ng, "mean_iou": 1.0, "mean_iou_with_mask": 1.0}
    assert summary["received"]["masks"] == ng
    _assert_consistent(summary)
    # the operator page ran beside it and kept every part for review
    assert summary["page"]["written"] == 12 and summary["page"]["dropped"] == 0
    assert len(list((tmp_path / "out" / "hmi" / "images").glob("*.overlay.png"))) == ng
    # and each NG part has an overlay: the published mask in red inside the green truth outline
    assert len(summary["overlays"]) == ng
    picture = cv2.imread(summary["overlays"][0])
    b, g, r = (picture[..., k].astype(int) for k in range(3))
    red = (r > 200) & (r > g + 60) & (r > b + 60)  # the white patch tinted red
    green = (picture[..., 1] > 200) & (picture[..., 2] < 80) & (picture[..., 0] < 80)
    assert red.sum() > 100 and green.sum() > 40


def test_demo_with_the_embedded_broker_loops_a_generated_line(artifact, synth_line, tmp_path):
    # given a real generated line of 12 frames, when 20 parts are asked for at 100 fps
    # through the embedded (pure-Python) broker
    code, summary = _demo(
        artifact, synth_line, tmp_path / "out", "--broker", "embedded", "--frames", "20", "--fps", "100"
    )
    # then the video looped, the PLC received all 20 verdicts over MQTT 3.1.1
    assert code == 0
    assert summary["broker"]["kind"] == "embedded" and summary["broker"]["mqtt"] == "3.1.1"
    assert summary["frames"] == summary["verdicts_received"] == summary["frames_requested"] == 20
    assert summary["received"]["duplicates_dropped"] >= 0 and summary["received"]["undecodable"] == 0
    # and the scores were taken against the sidecar record of each looped frame
    sidecar = [json.loads(x) for x in (synth_line / "stream" / "ground_truth.jsonl").read_text().splitlines()]
    truth_ng = sum(sidecar[k % len(sidecar)]["label"] == "NG" for k in range(20))
    confusion = summary["accuracy"]["image"]["confusion"]
    assert sum(confusion["NG"].values()) == truth_ng and sum(confusion["OK"].values()) == 20 - truth_ng
    assert summary["accuracy"]["pixel"]["ng_parts"] == truth_ng
    assert 0.0 <= summary["accuracy"]["pixel"]["mean_iou"] <= 1.0
    assert summary["received"]["masks"] == summary["verdicts_by_kind"].get("NG", 0)
    _assert_consistent(summary)
    assert len(summary["overlays"]) == min(6, summary["verdicts_by_kind"].get("NG", 0))
    assert all(Path(p).is_file() for p in summary["overlays"])


def test_missing_artifact_is_exit_2_and_names_the_export_command(synth_line, tmp_path, capsys):
    code, summary = _demo(tmp_path / "no_artifact", synth_line, tmp_path / "out")
    assert code == 2 and summary is None
    err = capsys.readouterr().err
    assert "no export artifact" in err and "eiad export onnx" in err


def test_missing_line_is_exit_2_and_names_the_synth_command(artifact, tmp_path, capsys):
    code, _ = _demo(artifact, tmp_path / "no_line", tmp_path / "out")
    assert code == 2
    err = capsys.readouterr().err
    assert "no synthetic line" in err and "eiad data synth --out" in err


def test_explain_without_a_language_model_is_exit_2(artifact, synth_line, tmp_path, capsys):
    code, _ = _demo(artifact, synth_line, tmp_path / "out", "--explain")
    assert code == 2
    assert "llm" in capsys.readouterr().err


def test_embedded_broker_stops_and_frees_its_port():
    import socket

    with start_broker("embedded") as broker:
        with socket.create_connection((broker.host, broker.port), timeout=1.0):
            pass
    with pytest.raises(OSError):
        socket.create_connection((broker.host, broker.port), timeout=0.5).close()


@pytest.mark.slow
@pytest.mark.mqtt
def test_demo_explains_ng_parts_with_the_artifacts_language_model(llm_artifact, synth_line, tmp_path):  # noqa: F811
    # given an artifact with a vision engine and an exported tiny language model (llm/)
    _, art, _ = llm_artifact
    # when the demo runs with --explain (frames are resized to the engine's input)
    code, summary = _demo(art, synth_line, tmp_path / "out", "--explain", "--fps", "0", "--frames", "8")
    # then every verdict arrived, and each explanation the station produced reached the PLC
    assert code == 0 and summary["verdicts_received"] == 8
    explained = summary["explanations"]
    assert explained["enabled"] is True
    assert explained["produced"] == explained["received"] == summary["verdicts_by_kind"].get("NG", 0)
    assert explained["received"] >= 1  # the tiny engine calls these textured parts NG
    assert explained["examples"] and all(e["text"].strip() for e in explained["examples"])
    # and each carries the station's check against its verdict and mask, judged in the summary
    assert all(isinstance(e["consistent"], bool) for e in explained["examples"])
    quality = explained["quality"]
    assert quality["explanations"] == explained["received"] and 0 <= quality["consistent"] <= 1
    assert set(quality["judged"]["goals"]) == {
        "median_words",
        "class_location_agreement",
        "shape_agreement",
        "appearance_agreement",
    }


from tests.unit.test_llm_fixtures import llm_artifact, parity_images, vision_artifact  # noqa: E402,F401,F811
