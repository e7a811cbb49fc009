"""`eiad bench engine --baselines anomalib`: the launcher, its guard and the merge into
the report, with a fake worker (a real python script run as a real subprocess that
prints the worker's JSON contract). The real worker needs the 5 GB side venv; it is
exercised by hand (docs/bench.md, "vs anomalib"), never on CI.
"""

import hashlib
import json
import sys
import textwrap

import cv2
import numpy as np
import pytest

from benchmarks.baselines import anomalib_baseline as ab
from benchmarks.engine_bench import bench_engine
from benchmarks.stand_ins.artifact import build_tiny_artifact, frame_with_patch, grey_frame
from commands.main import main
from eiad.split import ImageEntry, SplitIndex, save_split

FAKE_WORKER = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np
    job = json.load(open(sys.argv[1]))
    print("lightning chatter on stdout that the launcher must ignore")
    sys.stderr.write("fake worker: fitting\\n")
    eval_images = np.load(job["eval_images"])
    train_images = np.load(job["train_images"])
    scores = [float(np.abs(img.astype(float) - 128).mean()) for img in eval_images]
    runs = [{"path": "torch", "batch": b, "samples_ns": [2_000_000 * b] * 30 + [20_000_000 * b], "wall_s": 0.08 * b,
             "warmup": job["warmup"], "device": "cpu", "notes": []} for b in job["batches"]]
    doc = {"schema": "eiad-anomalib-worker/1", "model": "patchcore", "backbone": job["backbone"], "pre_trained": False,
           "device": "cpu", "fit_s": 1.5, "train_images": len(train_images), "peak_rss_mb": 100.0,
           "versions": {"anomalib": "fake", "torch": "fake"}, "runs": runs, "scores": {"torch": scores},
           "notes": ["eval sha " + hashlib.sha256(eval_images.tobytes()).hexdigest(), f"train {train_images.shape}",
                     f"coreset {job['coreset_sampling_ratio']}"]}
    print(json.dumps(doc))
""")


def _write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return str(path)


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    """The tiny artifact (grey = OK, a white patch = NG) and a split of real PNGs."""
    root = tmp_path_factory.mktemp("anomalib_line")
    artifact = build_tiny_artifact(root / "artifact")

    def ok(i):
        return ImageEntry(_write(root / f"ok{i}.png", grey_frame()), None, "OK", None, "Tiny", "grey")

    def ng(i):
        return ImageEntry(
            _write(root / f"ng{i}.png", frame_with_patch((10 + i, 10, 30 + i, 30))),
            None,
            "NG",
            "bright_spot",
            "Tiny",
            "grey",
        )

    split = SplitIndex(
        seed=0,
        fractions={"calibration": 0.2, "test": 0.4},
        root=str(root),
        classes=["bright_spot"],
        train=[ok(i) for i in range(5)] + [ng(9)],
        calibration=[ok(12), ng(3)],
        test=[ok(10), ng(1), ok(11), ng(2)],
    )
    save_split(root / "split.json", split)
    worker = root / "fake_worker.py"
    worker.write_text(FAKE_WORKER)
    return artifact, root / "split.json", worker


def _bench(line, tmp_path, **options):
    artifact, split, worker = line
    opts = ab.AnomalibOptions(
        python=options.pop("python", sys.executable), worker=options.pop("worker", worker), **options
    )
    return bench_engine(
        artifact,
        ["ort-cpu"],
        [1, 2],
        min_duration_s=0.05,
        warmup=1,
        split=split,
        eval_images=4,
        baselines=["anomalib"],
        anomalib=opts,
    )


def test_fake_worker_result_joins_the_report_beside_the_engine(line, tmp_path):
    # given the tiny artifact, a split and a worker that prints the JSON contract
    # when
    result = _bench(line, tmp_path, train_images=3, coreset_sampling_ratio=0.05)
    # then: one anomalib configuration per batch, in its own group, summarised like ours
    theirs = [c for c in result["configurations"] if c["group"] == "baseline-anomalib"]
    assert [c["name"] for c in theirs] == ["anomalib patchcore torch b1", "anomalib patchcore torch b2"]
    b1 = theirs[0]
    assert b1["latency_ms"]["p50_ms"] == pytest.approx(2.0) and b1["latency_ms"]["max_ms"] == pytest.approx(20.0)
    assert b1["latency_ms"]["count"] == 31 and b1["throughput_per_s"] == pytest.approx(31 / 0.08)
    # accuracy: AUROC from the worker's scores and the split's labels (grey OK, patched NG: perfect)
    assert b1["accuracy"]["image_auroc"] == 1.0 and b1["accuracy"]["images"] == 4
    assert "random weights" in b1["accuracy"]["backbone"]
    # the worker got exactly the images the engine was timed on, and the OK training images only
    from benchmarks.held_out import evaluation_images
    from eiad.manifest import load_manifest

    images, _ = evaluation_images(load_manifest(line[0]), line[1], 4)
    assert f"eval sha {hashlib.sha256(images.tobytes()).hexdigest()}" in result["notes"]
    assert "train (3, 64, 64, 3)" in result["notes"] and "coreset 0.05" in result["notes"]
    # ratios against our engine at the same batch, and both AUROCs
    comparisons = {c["name"]: c for c in result["comparisons"]}
    ours_b1 = next(c for c in result["configurations"] if c["name"] == "ort-cpu b1")
    ratio = comparisons["ort-cpu b1 / anomalib patchcore torch b1"]["ratio"]
    assert ratio == pytest.approx(ours_b1["throughput_per_s"] / b1["throughput_per_s"])
    assert comparisons["anomalib patchcore torch b1 p99 / ort-cpu b1 p99"]["metric"] == "latency ratio"
    aurocs = {c["name"]: c["ratio"] for c in result["comparisons"] if c["metric"] == "AUROC"}
    assert aurocs["image AUROC: our engine, ort-cpu (CPUExecutionProvider)"] == 1.0
    assert result["settings"]["anomalib"]["train_images"] == 3 and result["settings"]["anomalib"]["fit_s"] == 1.5


def test_report_shows_anomalib_rows_ratios_and_aurocs(line, tmp_path):
    # given a run merged with the fake worker
    from benchmarks.report import write_report

    result = _bench(line, tmp_path)
    # when
    written = write_report(result, tmp_path / "out")
    # then
    text = written["markdown"].read_text()
    assert "| anomalib patchcore torch b1 |" in text
    assert "ort-cpu b2 / anomalib patchcore torch b2" in text and "image AUROC" in text
    assert json.loads(written["json"].read_text())["configurations"][-1]["group"] == "baseline-anomalib"


def test_missing_side_venv_is_a_note_with_the_install_command(line, tmp_path, capsys):
    # given no side venv at the given path
    artifact, split, _ = line
    out = tmp_path / "o"
    # when
    code = main(
        [
            "bench",
            "engine",
            str(artifact),
            "--backends",
            "ort-cpu",
            "--batch",
            "1",
            "--min-duration-s",
            "0.05",
            "--warmup",
            "1",
            "--split",
            str(split),
            "--baselines",
            "anomalib",
            "--anomalib-python",
            str(tmp_path / "nope" / "python"),
            "--out",
            str(out),
        ]
    )
    # then: the engine is measured, anomalib is a note saying how to get it
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert [c["group"] for c in result["configurations"]] == ["engine"]
    note = next(n for n in result["notes"] if n.startswith("anomalib not measured"))
    assert "nope/python not found" in note and "create .venv-anomalib" in note and "torchvision==0.29.1" in note


def test_failing_worker_is_a_note_with_its_last_stderr_lines(line, tmp_path):
    # given a worker that dies the way a broken install does
    broken = tmp_path / "broken.py"
    broken.write_text("import sys\nsys.stderr.write('ModuleNotFoundError: No module named anomalib\\n')\nsys.exit(3)\n")
    # when
    result = _bench(line, tmp_path, worker=broken)
    # then
    assert all(c["group"] == "engine" for c in result["configurations"])
    note = next(n for n in result["notes"] if n.startswith("anomalib not measured"))
    assert "exited with 3" in note and "No module named anomalib" in note


@pytest.mark.parametrize(
    "stdout, expected",
    [
        ("", "printed nothing"),
        ("not json at all\n", "not JSON"),
        ('{"schema": "other/1"}\n', "lacks schema"),
        ('{"schema": "eiad-anomalib-worker/1", "runs": [], "scores": {}}\n', "lacks 'versions'"),
    ],
)
def test_worker_output_that_breaks_the_contract_is_named(stdout, expected):
    with pytest.raises(ab.BaselineUnavailable, match=expected):
        ab.parse_worker_output(stdout)


def test_worker_that_runs_too_long_is_stopped(line, tmp_path):
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(30)\n")
    job = ab.AnomalibJob(train_images="t.npy", eval_images="e.npy", height=8, width=8, work_dir=str(tmp_path))
    with pytest.raises(ab.BaselineUnavailable, match="ran past 0.5 s"):
        ab.run_worker(job, sys.executable, slow, timeout_s=0.5)


def test_without_split_or_with_an_unknown_baseline(line, tmp_path, capsys):
    artifact, _, worker = line
    # no split: nothing to fit PatchCore on -> a note
    result = bench_engine(
        artifact,
        ["ort-cpu"],
        [1],
        min_duration_s=0.05,
        warmup=1,
        eval_images=4,
        baselines=["anomalib"],
        anomalib=ab.AnomalibOptions(python=sys.executable, worker=worker),
    )
    assert any("anomalib not measured: it needs --split" in n for n in result["notes"])
    # an unknown baseline is a user error before anything is timed
    code = main(["bench", "engine", str(artifact), "--baselines", "halcon", "--out", str(tmp_path / "o")])
    assert code == 2 and "unknown baseline(s) 'halcon'" in capsys.readouterr().err


def test_image_auroc_rank_formula():
    labels = ["OK", "NG", "OK", "NG"]
    assert ab.image_auroc([0.1, 0.9, 0.2, 0.8], labels) == 1.0
    assert ab.image_auroc([0.9, 0.1, 0.8, 0.2], labels) == 0.0
    assert ab.image_auroc([0.5, 0.5, 0.5, 0.5], labels) == 0.5  # ties count half
    assert ab.image_auroc([0.1, 0.3, 0.2, 0.15], labels) == 0.75
    assert np.isnan(ab.image_auroc([0.1, 0.2], ["OK", "OK"]))  # one class only: undefined
    assert np.isnan(ab.image_auroc([np.nan, 0.2], ["OK", "NG"]))
