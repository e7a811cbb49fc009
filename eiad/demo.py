"""`eiad demo`: the product's main job on an embedded default, top to bottom.

Steps (each skipped when its output exists from an earlier run with the same settings):
    1. synth  generate a synthetic production line      -> OUT/line
    2. ddqa   build its DDQA training files and split    -> OUT/ddqa

Each stage's work is imported lazily so `eiad --help` stays light.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eiad.errors import ConfigError

log = logging.getLogger(__name__)

DONE_MARKER = ".eiad-demo-step.json"


def register(commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the whole chain on a built-in synthetic line",
        description="Generate a synthetic production line (images, defect masks, camera stream) and "
        "build its DDQA training files. Finished steps are reused on the next run (same "
        "settings); --fresh redoes everything.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output directory (default: demo_out)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for every step (default: 0)")
    parser.add_argument("--fresh", action="store_true", help="redo every step, ignoring earlier results")
    parser.add_argument("--until", metavar="STEP", default=None,
                        help="stop after this step (one of the folder names: line, ddqa)")
    parser.set_defaults(func=run_demo)


@dataclass(frozen=True)
class Step:
    name: str
    folder: str
    settings: dict
    run: Callable[[Path], str]  # does the work into the folder, returns a one-line summary


def _steps(out: Path, seed: int) -> list[Step]:
    def synth(folder: Path) -> str:
        from train.data.synth import SynthConfig, generate_line

        report = generate_line(SynthConfig(seed=seed), folder, progress=True, force=True)
        return (f"{report.images} images ({report.ng_images} NG), camera stream of "
                f"{report.stream.frames if report.stream else 0} frames, contact sheet {report.contact_sheet}")

    def ddqa(folder: Path) -> str:
        from train.data.ddqa import DdqaOptions, build_ddqa

        report = build_ddqa(out / "line", folder, DdqaOptions(seed=seed, force=True))
        records = {split: sum(tasks.values()) for split, tasks in report.records.items()}
        return f"{report.images_used} images, records per split {records}, classes {', '.join(report.classes)}"

    return [
        Step("synthetic line", "line", {"seed": seed}, synth),
        Step("DDQA files", "ddqa", {"seed": seed}, ddqa),
    ]


def _is_done(folder: Path, settings: dict) -> str | None:
    marker = folder / DONE_MARKER
    if not marker.is_file():
        return None
    try:
        saved = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return saved.get("summary") if saved.get("settings") == settings else None


def run_demo(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    steps = _steps(out, args.seed)
    if args.until is not None:
        names = [step.folder for step in steps]
        if args.until not in names:
            raise ConfigError(f"--until {args.until!r} is not a demo step; choose one of {', '.join(names)}")
        steps = steps[: names.index(args.until) + 1]
    for number, step in enumerate(steps, start=1):
        folder = out / step.folder
        summary = None if args.fresh else _is_done(folder, step.settings)
        if summary is not None:
            print(f"[{number}/{len(steps)}] {step.name}: reused {folder} ({summary})")
            continue
        print(f"[{number}/{len(steps)}] {step.name} -> {folder} ...", flush=True)
        started = time.perf_counter()
        # A step that fails half-way must not be reused: drop the marker before running.
        (folder / DONE_MARKER).unlink(missing_ok=True)
        summary = step.run(folder)
        (folder / DONE_MARKER).write_text(json.dumps({"settings": step.settings, "summary": summary}), encoding="utf-8")
        print(f"      done in {time.perf_counter() - started:.1f} s: {summary}")
    print(f"demo finished: everything is under {out.resolve()}")
    return 0
