"""`eiad demo` (the README's main command) runs its steps and reuses finished ones."""

from commands.main import main


def test_demo_builds_data_then_reuses_it(tmp_path, capsys):
    out = tmp_path / "demo"
    # given an empty folder, when the demo runs up to the DDQA step
    assert main(["-q", "demo", "--out", str(out), "--until", "ddqa"]) == 0
    first = capsys.readouterr().out
    # then the synthetic line and the DDQA files exist
    assert (out / "line" / "contact_sheet.png").is_file()
    assert (out / "ddqa" / "train.jsonl").stat().st_size > 0
    assert (out / "ddqa" / "split.json").is_file()
    assert "reused" not in first
    # when it runs again with the same settings, then both steps are reused
    assert main(["-q", "demo", "--out", str(out), "--until", "ddqa"]) == 0
    assert first != (second := capsys.readouterr().out)
    assert second.count("reused") == 2


def test_demo_rejects_an_unknown_step(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--until", "nope"]) == 2
    assert "not a demo step" in capsys.readouterr().err


def test_demo_redoes_a_step_an_interrupted_run_left_half_done(tmp_path, capsys):
    # given a finished 'line' step and a 'ddqa' folder an interrupted run left without its marker
    out = tmp_path / "demo"
    assert main(["-q", "demo", "--out", str(out), "--until", "line", "--quick"]) == 0
    (out / "ddqa").mkdir()
    (out / "ddqa" / "train.jsonl").write_text("half written")
    capsys.readouterr()
    # when the demo runs again, then it reuses the line and redoes the DDQA step by itself
    assert main(["-q", "demo", "--out", str(out), "--until", "ddqa", "--quick"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("reused") == 1 and (out / "ddqa" / "split.json").is_file()
    assert (out / "ddqa" / "train.jsonl").read_text() != "half written"
