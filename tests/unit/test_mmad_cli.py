"""`eiad eval mmad-score` end to end: answers file in, table printed, CSV written."""

import argparse
import csv
import json

import pytest

from commands.main import main
from train.eval.mmad import cli as mmad_cli

GOOD = "GoodsAD/drink_can/good/001.jpg"
BAD = "GoodsAD/drink_can/dent/002.jpg"


def rec(image, qtype, correct, given):
    return {
        "image": image,
        "question": "Question: ...",
        "question_type": qtype,
        "correct_answer": correct,
        "gpt_answer": given,
    }


@pytest.fixture()
def answers(tmp_path):
    records = [
        rec(GOOD, "Anomaly Detection", "A", "A"),  # normal 1/1
        rec(BAD, "Anomaly Detection", "B", "A"),  # anomalous 0/2 -> miss 100
        rec(BAD, "Anomaly Detection", "B", "A"),
        rec(BAD, "Defect Classification", "C", "C"),  # 1/1
        rec(BAD, "Defect Classification", "C", "c"),  # dropped (lower case)
    ]
    path = tmp_path / "answers_0_shot_ours.json"
    path.write_text(json.dumps(records))
    return path


def run_alone(argv):
    """The sub-command on its own parser: independent of the other stages' modules."""
    parser = argparse.ArgumentParser(prog="eiad eval")
    mmad_cli.register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def read_csv(path):
    with path.open(newline="") as handle:
        return {row[""]: row for row in csv.DictReader(handle)}


def test_eiad_main_scores_and_writes_csv(answers, tmp_path, capsys):
    out = tmp_path / "result.csv"
    code = main(["eval", "mmad-score", str(answers), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "answers not one letter A-E: 1 (dropped" in printed and f"wrote {out}" in printed
    rows = read_csv(out)
    assert list(rows) == ["GoodsAD", "Average"]
    assert float(rows["GoodsAD"]["Anomaly Detection"]) == 50.0  # (100 + 0) / 2
    assert float(rows["GoodsAD"]["Miss"]) == 100.0
    assert float(rows["GoodsAD"]["Overkill"]) == 0.0
    assert float(rows["GoodsAD"]["Defect Classification"]) == 100.0
    assert rows["GoodsAD"]["Defect Localization"] == ""
    assert float(rows["Average"]["Average"]) == 75.0  # (50 + 100) / 2


def test_default_output_beside_answers_and_strict(answers, capsys):
    assert run_alone(["mmad-score", str(answers), "--strict"]) == 0
    rows = read_csv(answers.with_name("answers_0_shot_ours_accuracy.csv"))
    assert float(rows["GoodsAD"]["Defect Classification"]) == 50.0  # the "c" counts wrong
    assert "(counted wrong (--strict))" in capsys.readouterr().out


def test_normal_flag_option(answers):
    run_alone(["mmad-score", str(answers), "--normal-flag", "nothing-matches"])
    rows = read_csv(answers.with_name("answers_0_shot_ours_accuracy.csv"))
    assert float(rows["GoodsAD"]["Anomaly Detection"]) == pytest.approx(100 / 3)  # all anomalous: 1/3
    assert rows["GoodsAD"]["Overkill"] == ""


def test_reparse_extracts_letters_from_raw_replies(tmp_path):
    path = tmp_path / "raw.json"
    path.write_text(
        json.dumps([rec(BAD, "Defect Analysis", "B", "A dent. Answer: B"), rec(BAD, "Defect Analysis", "B", "no idea")])
    )
    out = tmp_path / "r.csv"
    assert run_alone(["mmad-score", str(path), "--out", str(out), "--reparse", "last"]) == 0
    assert float(read_csv(out)["GoodsAD"]["Defect Analysis"]) == 100.0  # last letter B; 1 dropped
    assert run_alone(["mmad-score", str(path), "--out", str(out), "--reparse", "first"]) == 0
    assert float(read_csv(out)["GoodsAD"]["Defect Analysis"]) == 0.0  # first letter: article A


def test_nothing_scorable_exits_1_and_malformed_file_exits_2(tmp_path, capsys):
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps([rec(BAD, "Defect Analysis", "B", "I think it is fine")]))
    assert main(["eval", "mmad-score", str(raw)]) == 1
    assert "no record could be scored" in capsys.readouterr().out
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{"image": BAD}]))
    assert main(["eval", "mmad-score", str(broken)]) == 2
    assert "broken.json: record 0: missing key(s)" in capsys.readouterr().err
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert main(["eval", "mmad-score", str(empty)]) == 2
