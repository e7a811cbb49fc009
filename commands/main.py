"""The `eiad` command: one entry point, one sub-command per stage.

    eiad data   ...  synthetic line, DDQA builder            (train/data/cli.py)
    eiad train  ...  fine-tune the model                     (train/cli.py)
    eiad eval   ...  localization metrics, DDQA QA, MMAD     (train/eval/cli.py)
    eiad export ...  ONNX, TensorRT, quantized LLM, verify   (export/cli.py)
    eiad edge   ...  run a station                           (edge/cli.py)
    eiad bench  ...  latency and throughput                  (benchmarks/cli.py)
    eiad demo        the whole chain on an embedded default  (commands/demo.py)

Each stage's `cli.py` only declares arguments; the work is imported when a command
runs, so `eiad edge --help` works on an edge box without torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from eiad import __version__
from eiad.errors import EiadError
from eiad.logs import configure_logging

log = logging.getLogger(__name__)

# (module that declares the sub-command(s), the extra its work needs)
_STAGES = (
    ("train.data.cli", "data"),
    ("train.cli", "train"),
    ("train.eval.cli", "train"),
    ("export.cli", "export"),
    ("edge.cli", "edge"),
    ("benchmarks.cli", "all"),
    ("commands.demo", "all"),
)
_PROJECT = {"eiad", "edge", "train", "export", "benchmarks", "commands"}
_EXTRA_OF: dict[str, str] = {}  # sub-command -> extra, filled by build_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eiad",
        description="EIAD Edge: explainable industrial anomaly detection from training to the line.",
        epilog="Run 'eiad COMMAND --help' for the options of each command. "
        "Start with 'make demo' (or 'eiad demo') to see the whole chain on synthetic data.",
    )
    parser.add_argument("--version", action="version", version=f"eiad {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-v debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name, extra in _STAGES:
        before = set(commands.choices)
        importlib.import_module(module_name).register(commands)
        _EXTRA_OF.update({name: extra for name in set(commands.choices) - before})
    return parser


def missing_extra_message(command: str, error: ModuleNotFoundError) -> str | None:
    """What to install when `command` needs a library this install lacks; None when the
    missing module is the project's own (a bug, not an install choice)."""
    missing = (error.name or "").split(".")[0]
    if not missing or missing in _PROJECT:
        return None
    extra = _EXTRA_OF.get(command, "all")
    return (
        f"'eiad {command}' needs {missing!r}, which this install does not have (an edge-only install has no "
        f"training or export stack): pip install '.[{extra}]'"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(-1 if args.quiet else args.verbose)
    # A command that runs other eiad commands (the demo) calls back through this, instead of
    # importing this module, which imports it.
    args.run_command = main
    try:
        return int(args.func(args) or 0)
    except EiadError as error:
        log.debug("user error", exc_info=True)
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        message = missing_extra_message(args.command, error)
        if message is None:
            raise
        log.debug("missing library", exc_info=True)
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
