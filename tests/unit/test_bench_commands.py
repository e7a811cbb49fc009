"""Short smoke runs of every `eiad bench` command on the tiny torch-free artifact.

The line and sweep runs start a real Mosquitto of their own (benchmarks/broker.py) and
push real frames through the edge loop, the SQLite outbox and paho to a subscriber.
"""

import json
import re

import pytest

from benchmarks.baselines import anomalib_baseline
from benchmarks.stand_ins.artifact import build_tiny_artifact, frame_with_patch, grey_frame
from commands.main import main
from edge.sinks.mqtt.broker import mosquitto_binary
from tests.support_bench.station import tiny_station

needs_mosquitto = pytest.mark.skipif(mosquitto_binary() is None, reason="Mosquitto not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    return tiny_station(tmp_path_factory.mktemp("bench_station"))


def _result(out):
    return json.loads((out / "result.json").read_text())


def _split_of_good_and_bright_parts(folder):
    """A split.json whose test part holds 4 grey (OK) and 4 bright-patch (NG) images."""
    import cv2

    from eiad.split import ImageEntry, SplitIndex, save_split

    folder.mkdir(parents=True)
    entries = []
    for i in range(8):
        bright = i % 2 == 1
        image = frame_with_patch((16, 16, 40, 40)) if bright else grey_frame()
        path = folder / f"part{i}.png"
        cv2.imwrite(str(path), image)
        entries.append(
            ImageEntry(str(path), None, "NG" if bright else "OK", "bright_spot" if bright else None, "t", "t")
        )
    save_split(
        folder / "split.json",
        SplitIndex(0, {"train": 0.0, "calibration": 0.0, "test": 1.0}, str(folder), ["bright_spot"], test=entries),
    )
    return folder / "split.json"


def test_engine_times_ort_cpu_reports_missing_backends_and_checks_agreement(tmp_path, capsys):
    # given the tiny artifact
    artifact = build_tiny_artifact(tmp_path / "artifact")
    split = _split_of_good_and_bright_parts(tmp_path / "parts")
    out = tmp_path / "engine"
    # when
    code = main(
        [
            "bench",
            "engine",
            str(artifact),
            "--batch",
            "1,2",
            "--min-duration-s",
            "0.2",
            "--warmup",
            "2",
            "--split",
            str(split),
            "--eval-images",
            "8",
            "--out",
            str(out),
        ]
    )
    # then: one configuration per batch size, with latency, throughput and agreement
    assert code == 0
    result = _result(out)
    names = [c["name"] for c in result["configurations"]]
    assert names == ["ort-cpu b1", "ort-cpu b2"]
    for config in result["configurations"]:
        assert config["iterations"] >= 30 and config["throughput_per_s"] > 0
        assert config["accuracy"]["verdict_agreement"] == 1.0 and config["accuracy"]["images"] == 8
        assert config["device"] == "CPUExecutionProvider"
    # unavailable backends are reported with the reason, not hidden
    assert any(n.startswith("torch not measured: no --torch-checkpoint") for n in result["notes"])
    assert (out / "latency_cdf.png").is_file() and "ort-cpu b2" in capsys.readouterr().out


def test_engine_with_only_unavailable_backends_is_a_clear_error(tmp_path, capsys):
    artifact = build_tiny_artifact(tmp_path / "artifact")
    code = main(["bench", "engine", str(artifact), "--backends", "torch", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "no backend could be measured" in capsys.readouterr().err


@needs_mosquitto
def test_line_measures_the_loop_bare_runner_saturated_loop_and_naive_baseline(tmp_path, station):
    out = tmp_path / "line"
    code = main(
        [
            "bench",
            "line",
            "--config",
            str(station),
            "--fps",
            "25",
            "--cameras",
            "2",
            "--duration-s",
            "1.2",
            "--budget-ms",
            "1000",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = _result(out)
    by_group = {c["group"]: c for c in result["configurations"]}
    assert set(by_group) == {"loop", "bare", "saturated", "baseline"}
    loop = by_group["loop"]
    # every captured frame reached the subscriber exactly once, in the stages that add up
    assert loop["drops"] == 0 and loop["verdicts_received"] == loop["frames_captured"] == 2 * 30
    assert {"capture", "queue", "preprocess", "inference", "postprocess", "outbox", "publish+broker", "total"} <= loop[
        "stages_ms"
    ].keys()
    assert loop["stages_ms"]["inference"]["p50_ms"] <= loop["stages_ms"]["total"]["p50_ms"]
    assert loop["budget"]["required_fps"] == 50.0 and loop["budget"]["latency_ok"]
    assert (
        loop["verdicts"].get("NG", 0) > 0 and loop["verdicts"].get("OK", 0) > 0
    )  # 1 in 4 synthetic frames is a defect
    assert by_group["baseline"]["latency_ms"]["count"] == 2 * 30
    metrics = {c["name"] for c in result["comparisons"]}
    assert {"saturated loop / bare runner", "paced loop p99 - bare runner p99", "station loop / naive loop"} <= metrics
    assert (out / "stages.png").is_file()


@needs_mosquitto
def test_sweep_finds_a_sustainable_fps_per_grid_point(tmp_path, station, monkeypatch):
    from edge.runners import onnxruntime_runner

    # The station pins ONNX Runtime to 1 thread: every grid point must run with it, not ORT's default.
    pinned = tmp_path / "station.yaml"
    pinned.write_text(station.read_text() + "runner: {kind: onnxruntime, intra_op_threads: 1}\n", encoding="utf-8")
    (tmp_path / "artifact").symlink_to(station.parent / "artifact")
    threads_used = []

    class SpyRunner(onnxruntime_runner.OnnxRuntimeRunner):
        def __init__(self, *args, **kwargs):
            threads_used.append(kwargs.get("intra_op_threads"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(onnxruntime_runner, "OnnxRuntimeRunner", SpyRunner)
    out = tmp_path / "sweep"
    code = main(
        [
            "bench",
            "sweep",
            "--config",
            str(pinned),
            "--cameras",
            "1,2",
            "--fps-max",
            "40",
            "--probe-s",
            "0.5",
            "--steps",
            "1",
            "--budget-ms",
            "1000",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = _result(out)
    rows = result["sweep"]
    assert [r["cameras"] for r in rows] == [1, 2]
    assert all(r["max_fps_per_camera"] == 40 for r in rows)  # the tiny model keeps up with 40 fps at a 1 s budget
    assert (out / "throughput_vs_cameras.png").is_file()
    assert threads_used == [1]
    assert result["settings"]["runner"]["intra_op_threads"] == 1


@needs_mosquitto
def test_sweep_times_the_stations_own_runner_beside_an_ort_backend(tmp_path, station):
    # given the tiny station (its runner: ONNX Runtime, whatever provider the machine has)
    out = tmp_path / "sweep"
    args = ["bench", "sweep", "--config", str(station), "--cameras", "1", "--fps-max", "20", "--probe-s", "0.5"]
    # when the grid names the station's runner and the CPU chain
    code = main([*args, "--steps", "1", "--budget-ms", "1000", "--backends", "station,ort-cpu", "--out", str(out)])
    # then both are measured, each row says which, and the runner really used is recorded
    assert code == 0
    result = _result(out)
    assert [r["backend"] for r in result["sweep"]] == ["station", "ort-cpu"]
    assert all(r["max_fps_per_camera"] == 20 for r in result["sweep"])
    assert result["settings"]["station_runner_provider"] == "CPUExecutionProvider"
    # and an unknown backend is a clear error naming the choices
    assert main([*args, "--backends", "tensorflow", "--out", str(tmp_path / "x")]) == 2


def test_runner_parity_compares_the_stations_runner_with_onnx_runtime(station, capsys):
    from benchmarks import runner_parity

    # given the tiny station (its runner: ONNX Runtime; synthetic frames: no video source)
    # when its runner is compared with the CPU reference
    code = runner_parity.main(["--config", str(station)])
    # then every frame's verdict agrees, the differences are printed per output, and each batch is timed
    out = capsys.readouterr().out
    agreed = re.search(r"verdict agreement (\d+)/(\d+)", out)
    assert code == 0 and agreed and agreed[1] == agreed[2] and int(agreed[2]) > 0
    assert "'anomaly_map': 0.0" in out and "runner b8: p50" in out


def test_compare_prints_ratios_between_two_engine_runs(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    base = {"schema": "eiad-bench/1", "kind": "engine"}
    a.write_text(
        json.dumps(
            {
                **base,
                "configurations": [
                    {"name": "ort-cpu b1", "throughput_per_s": 100.0, "latency_ms": {"p50_ms": 2.0, "p99_ms": 4.0}}
                ],
            }
        )
    )
    b.write_text(
        json.dumps(
            {
                **base,
                "configurations": [
                    {"name": "ort-cpu b1", "throughput_per_s": 250.0, "latency_ms": {"p50_ms": 1.0, "p99_ms": 1.0}}
                ],
            }
        )
    )
    assert main(["bench", "compare", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert "throughput_per_s" in text and "2.500" in text and "0.250" in text and "B better" in text


def test_anomalib_baseline_says_why_it_is_absent():
    status = anomalib_baseline.availability()
    assert isinstance(status.available, bool)
    if not status.available:
        assert "anomalib" in status.reason


@needs_mosquitto
def test_line_scores_the_verdicts_against_the_streams_truth_and_fails_a_wrong_model(tmp_path):
    from benchmarks.stand_ins.frames import write_synthetic_line

    # given a station whose camera is a synthetic line with ground truth (every 3rd part NG)
    station = tiny_station(tmp_path / "st")
    write_synthetic_line(tmp_path / "st" / "line", count=12, every_ng=3)
    text = station.read_text().replace(
        "{kind: folder, id: cam0, path: frames}", "{kind: synthetic, id: cam0, path: line/line.mkv}"
    )
    station.write_text(text)
    # when the line bench runs with the right truth
    out = tmp_path / "right"
    assert (
        main(
            [
                "bench",
                "line",
                "--config",
                str(station),
                "--fps",
                "25",
                "--cameras",
                "1",
                "--duration-s",
                "0.96",
                "--budget-ms",
                "1000",
                "--no-bare",
                "--no-baseline",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    loop = _result(out)["configurations"][0]
    # then each of the 12 parts was scored once, though the run judged each twice (24 verdicts, 2 passes)
    accuracy = loop["accuracy"]
    assert accuracy["scored"] == 12 and accuracy["verdicts"] == 24 and accuracy["replays_disagreeing"] == 0
    assert accuracy["accuracy"] == 1.0 and loop["quality"]["passed"]
    assert "acc 100.0% miss 0.0% overkill 0.0% of 12 parts (24 verdicts)" in (out / "report.md").read_text()
    # when the truth says the opposite of what the model sees (a model that is wrong on this line)
    truth = tmp_path / "st" / "line" / "ground_truth.jsonl"
    flipped = [json.loads(line) for line in truth.read_text().splitlines()]
    for record in flipped:
        record["label"] = "OK" if record["label"] == "NG" else "NG"
    truth.write_text("".join(json.dumps(r) + "\n" for r in flipped))
    out = tmp_path / "wrong"
    assert (
        main(
            [
                "bench",
                "line",
                "--config",
                str(station),
                "--fps",
                "25",
                "--cameras",
                "1",
                "--duration-s",
                "0.96",
                "--budget-ms",
                "1000",
                "--no-bare",
                "--no-baseline",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    loop = _result(out)["configurations"][0]
    # then the run is marked failed, whatever its speed
    assert loop["accuracy"]["accuracy"] == 0.0 and loop["quality"]["passed"] is False
    assert any(n.startswith("FAILED: the verdicts miss the line's quality goals") for n in loop["notes"])
    assert "FAILED" in (out / "report.md").read_text()


def test_agreement_is_reported_only_on_sets_holding_both_verdicts():
    import numpy as np

    from benchmarks.held_out import agreement

    scores = np.zeros(4)
    mixed = agreement((["OK", "NG", "OK", "NG"], scores), (["OK", "NG", "NG", "NG"], scores), "ref")
    assert mixed["verdict_agreement"] == 0.75 and mixed["agreement_note"] is None
    all_ok = agreement((["OK"] * 4, scores), (["OK"] * 4, scores), "ref")
    assert all_ok["verdict_agreement"] is None and "both OK and NG" in all_ok["agreement_note"]
