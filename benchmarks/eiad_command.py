"""Run `eiad ARGS` the way a user does: a child process of this interpreter.

The benchmarks that record commands (regenerate, ablation) run them as commands rather
than calling into the `eiad` entry point, which would make benchmarks/ and commands/
import each other (`eiad bench` lives in benchmarks/)."""

from __future__ import annotations

import subprocess
import sys


def eiad(args: list[str]) -> int:
    """Exit code of `eiad ARGS` (its output goes to this process's stdout/stderr)."""
    return subprocess.run([sys.executable, "-m", "commands.main", *args], check=False).returncode
