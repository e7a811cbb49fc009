"""`eiad data synth` through the real entry point."""

from __future__ import annotations

import json

import pytest

from commands.main import main
from train.data.synth import DEFECT_TYPES, PART_TYPES

ARGS = [
    "--size",
    "64",
    "--ok-per-part",
    "1",
    "--ng-per-defect",
    "1",
    "--parts",
    "pcb,brick",
    "--stream-frames",
    "5",
    "--no-progress",
]


def test_synth_writes_the_line_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "line"
    assert main(["data", "synth", "--out", str(out), "--seed", "2", *ARGS]) == 0
    printed = capsys.readouterr().out
    assert "pcb" in printed and "brick" in printed and "stream: 5 frames" in printed
    body = json.loads((out / "synth_report.json").read_text())
    assert body["seed"] == 2 and body["config"]["parts"] == ["pcb", "brick"]
    assert body["counts"]["pcb"] == {"OK": 1, "scratch": 1, "crack": 1, "stain": 1, "missing_material": 1}
    assert (out / "stream" / "line.avi").stat().st_size > 0 and (out / "contact_sheet.png").exists()


def test_synth_refuses_a_non_empty_directory_without_force(tmp_path, capsys):
    # given a directory holding someone's file
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    # when synth runs without --force, then it stops with a clear error and writes nothing
    assert main(["data", "synth", "--out", str(out), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err and str(out) in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_force_replaces_only_our_own_outputs(tmp_path, capsys):
    out = tmp_path / "again"
    assert main(["data", "synth", "--out", str(out), *ARGS]) == 0
    (out / "notes.txt").write_text("keep me")
    stale = out / "SynthLine" / "pcb" / "OK" / "image" / "stale.png"
    stale.write_bytes(b"old")
    assert main(["data", "synth", "--out", str(out), "--force", *ARGS]) == 0
    assert (out / "notes.txt").read_text() == "keep me"
    assert not stale.exists()
    assert (out / "SynthLine" / "pcb" / "OK" / "image" / "pcb_ok_0000.png").exists()


def test_bad_options_name_the_key(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--parts", "pcb,bolt", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "parts" in err and "bolt" in err
    assert main(["data", "synth", "--out", str(tmp_path / "y"), "--size", "8", "--no-progress"]) == 2
    assert "--size" in capsys.readouterr().err


def test_help_lists_part_and_defect_types(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synth", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in (*PART_TYPES, *DEFECT_TYPES):
        assert name in text
