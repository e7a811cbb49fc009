"""`eiad demo --quick` from an empty folder to the station's summary, in its own process:
the README's first command on the same code path as `make demo`, with a smaller line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_demo_runs_every_step_and_the_plc_gets_every_verdict(tmp_path):
    out = tmp_path / "demo"
    # when the whole chain runs (synthetic line, DDQA, training, merge, export, station)
    proc = subprocess.run(
        [sys.executable, "-m", "commands.main", "demo", "--out", str(out), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # then the station inspected every part of the stream and the PLC received every verdict
    summary = json.loads((out / "edge" / "summary.json").read_text())
    assert summary["all_received"] and summary["frames"] == 60
    # and the demo judged the verdicts against the line's ground truth
    assert summary["accuracy"]["image"]["scored"] == 60
    assert set(summary["quality"]["goals"]) == {"accuracy", "overkill_rate", "miss_rate", "mean_iou"}
    # and every reported training figure came from the test split
    metrics = json.loads((out / "train" / "localization" / "metrics.json").read_text())
    assert metrics["test"]["split"] == "test"
    # and every explanation the PLC received carries the station's consistency check
    explanations, ng = summary["explanations"], summary["verdicts_by_kind"].get("NG", 0)
    assert explanations["enabled"] and explanations["received"] == explanations["produced"] == ng
    assert len(explanations["examples"]) == min(3, ng)
    assert all(isinstance(x["consistent"], bool) for x in explanations["examples"])
    assert (explanations["quality"] is not None) == (ng > 0)
    # and the dialog run reported its answers to the explainer's question on held-out images
    report = json.loads((out / "train" / "dialog" / "explanations.json").read_text())
    assert report["images"] >= 1 and set(report["judged"]["goals"]) >= {"median_words", "class_location_agreement"}
    assert (out / "artifact" / "manifest.json").is_file() and "demo finished" in proc.stdout
    # and `eiad train report` re-checks the finished run's explanations into the same file
    (out / "train" / "dialog" / "explanations.json").unlink()
    again = subprocess.run(
        [sys.executable, "-m", "commands.main", "train", "report", "--config", str(out / "train.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert json.loads((out / "train" / "dialog" / "explanations.json").read_text())["images"] == report["images"]
