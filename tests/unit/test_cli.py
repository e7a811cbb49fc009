"""The `eiad` entry point: every stage answers --help, user errors exit 2 without a traceback."""

import subprocess
import sys

import pytest

from commands.main import build_parser, main
from eiad.errors import DataError

STAGES = ["data", "train", "eval", "export", "edge", "bench", "demo"]


def test_every_stage_is_registered():
    # given the parser, when listing its commands, then every stage is there
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(STAGES) <= set(commands)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_help_describes_itself(stage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([stage, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"eiad {stage}" in out
    assert len(out.splitlines()) >= 3


def test_user_error_exits_2_with_message(monkeypatch, capsys):
    # given a command whose handler raises a user error
    parser = build_parser()

    def failing(_args):
        raise DataError("mask missing for image x.png: add the mask or remove the image")

    monkeypatch.setattr("commands.main.build_parser", lambda: parser)
    args = parser.parse_args(["demo"])
    parser.set_defaults(func=failing)
    for action in parser._actions:
        if action.dest == "command":
            action.choices["demo"].set_defaults(func=failing)
    # when it runs, then the message is printed and the exit code is 2
    assert main(["demo"]) == 2
    assert "error: mask missing for image x.png" in capsys.readouterr().err
    assert args.command == "demo"


def test_entry_point_runs_as_module():
    result = subprocess.run(
        [sys.executable, "-m", "commands.main", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("eiad ")
