"""On an edge-only install (no torch), the commands that need the training or export
stack end with a one-line error naming the extra to install, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# torch hidden the way an install without it behaves: `import torch` raises ModuleNotFoundError
RUN_WITHOUT_TORCH = (
    "import sys; sys.modules['torch'] = None\nfrom commands.main import main\nsys.exit(main(sys.argv[1:]))"
)


def eiad_without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_TORCH, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args, extra",
    [
        (("train", "--config", "configs/train.yaml", "--out", "{tmp}/run"), "train"),
        (("export", "onnx", "--checkpoint", "{tmp}/checkpoint", "--out", "{tmp}/artifact"), "export"),
    ],
)
def test_a_command_needing_torch_names_the_extra_to_install(tmp_path, args, extra):
    done = eiad_without_torch(*(a.format(tmp=tmp_path) for a in args))
    assert done.returncode == 2, done.stderr
    assert f"pip install '.[{extra}]'" in done.stderr and "'torch'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_edge_commands_still_answer_without_torch():
    done = eiad_without_torch("edge", "--help")
    assert done.returncode == 0 and "station" in done.stdout.lower()


def test_a_missing_project_module_is_a_bug_not_an_install_choice():
    from commands.main import build_parser, missing_extra_message

    build_parser()
    assert missing_extra_message("train", ModuleNotFoundError("no", name="train.gone")) is None
    assert "'.[edge]'" in missing_extra_message("edge", ModuleNotFoundError("no", name="paho.mqtt"))
