"""What the demo's line and localization recipe are made of: localization runs on variants
of the synthetic line, each exported and run through the station on the line's 300-part
stream, side by side (test-split figures and what the PLC received).

    python -m benchmarks.line_recipe run RUN --ok-per-part N --ng-per-defect N --steps N \\
        [--good-calibration-fraction F] [--good-share S] [--seed N]   # the eiad commands below, into RUN/
    python -m benchmarks.line_recipe report RUN [RUN ...] [--out benchmarks/results/line_recipe]

`run` is, in order: `eiad data synth` (seed 0, 224 px, 300 stream parts), `eiad data ddqa`,
`eiad train --only localization` (the demo's localization settings, `max_steps` N, no time
budget, training seed `--seed`: the line and its split stay seed 0, as the demo's),
`eiad export onnx` and `eiad edge demo` (30 fps, no page, no explanations). The
report copies each run's figures beside the table (RUN.json), so `report --from-results`
regenerates it from the committed files.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml

LOCALIZATION = {"unfreeze_vision": True, "epochs": 1000, "num_workers": 1}


def _eiad(*args: str) -> None:
    command = [str(Path(sys.executable).parent / "eiad"), *args]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def run(
    out: Path,
    ok_per_part: int,
    ng_per_defect: int,
    steps: int,
    good_calibration: float | None,
    good_share: float | None = None,
    seed: int = 0,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sizes = ["--ok-per-part", str(ok_per_part), "--ng-per-defect", str(ng_per_defect), "--stream-frames", "300"]
    _eiad("-q", "data", "synth", "--out", str(out / "line"), "--seed", "0", "--size", "224", "--force", *sizes)
    extra = ["--good-calibration-fraction", str(good_calibration)] if good_calibration is not None else []
    _eiad("-q", "data", "ddqa", str(out / "line"), "--out", str(out / "ddqa"), "--seed", "0", "--force", *extra)
    config = {
        "backbone": "tiny-minicpmv46",
        "ddqa_dir": str((out / "ddqa").resolve()),
        "out_dir": str((out / "train").resolve()),
        "seed": seed,
        "device": "auto",
        "localization": {**LOCALIZATION, "max_steps": steps, **({"good_share": good_share} if good_share else {})},
    }
    (out / "train.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    _eiad("train", "--config", str(out / "train.yaml"), "--only", "localization")
    _eiad("-q", "export", "onnx", "--checkpoint", str(out / "train/localization/checkpoint"), "--out",
          str(out / "artifact"), "--split", str(out / "ddqa/split.json"), "--force")  # fmt: skip
    _eiad("edge", "demo", "--artifact", str(out / "artifact"), "--line", str(out / "line"), "--out",
          str(out / "edge"), "--fps", "30", "--no-page", "--no-progress")  # fmt: skip
    (out / "recipe.json").write_text(
        json.dumps(
            {
                "ok_per_part": ok_per_part,
                "ng_per_defect": ng_per_defect,
                "steps": steps,
                "good_calibration_fraction": good_calibration,
                "good_share": good_share,
                "seed": seed,
                "wall_s": round(time.perf_counter() - started, 1),
            }
        ),
        encoding="utf-8",
    )


def collect(run_dir: Path) -> dict:
    split = json.loads((run_dir / "ddqa" / "split.json").read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "train" / "localization" / "metrics.json").read_text(encoding="utf-8"))
    summary = json.loads((run_dir / "edge" / "summary.json").read_text(encoding="utf-8"))
    recipe_file = run_dir / "recipe.json"
    recipe = json.loads(recipe_file.read_text(encoding="utf-8")) if recipe_file.is_file() else {}
    synth = json.loads((run_dir / "line" / "synth_report.json").read_text(encoding="utf-8"))
    counts = {
        part: {label: sum(e["label"] == label for e in split[part]) for label in ("OK", "NG")}
        for part in ("train", "calibration", "test")
    }
    test = metrics["metrics"]
    stream = summary["accuracy"]
    return {
        "run": run_dir.name,
        "ok_per_part": synth["config"]["ok_per_part"],
        "ng_per_defect": synth["config"]["ng_per_defect"],
        "good_calibration_fraction": split["fractions"].get("good_calibration"),
        "good_share": recipe.get("good_share"),
        "seed": recipe.get("seed", 0),
        "split": counts,
        "steps": test["steps"],
        "train_wall_s": round(test["train_wall_s"], 1),
        "test": {
            k: round(test[k], 4)
            for k in (
                "accuracy",
                "miss_rate",
                "overkill_rate",
                "image_auroc",
                "aupro",
                "mean_iou_defective",
                "class_accuracy",
            )
        },  # fmt: skip
        "stream": {
            "accuracy": stream["image"]["accuracy"],
            "miss_rate": stream["image"]["miss_rate"],
            "overkill_rate": stream["image"]["overkill_rate"],
            "mean_iou": stream["pixel"]["mean_iou"],
            "class_right": stream["class_agreement"],
        },
        "stream_goals_met": summary["quality"]["passed"],
        "recipe_wall_s": recipe.get("wall_s"),
    }


def report(rows: list[dict]) -> str:
    lines = [
        "# The demo's line and localization recipe, measured",
        "",
        "`python -m benchmarks.line_recipe run RUN ...` per row, then `python -m benchmarks.line_recipe report RUN...`",
        f"({platform.machine()}; the line and its split seed 0, training seed per row; test split: thresholds "
        "from the calibration split; stream: the 300-part "
        "line through the station, what the PLC received; goals on it: accuracy >= 97 %, overkill <= 2 %, "
        "miss <= 5 %, mean mask IoU >= 0.6; training s: the localization training's wall time, with other "
        "work on the machine at times)",
        "",
        "| run | good / defect images per type | good calibration share | train OK/NG | good share per epoch "
        "| calibration OK | steps | training seed | training s "
        "| test miss | test image AUROC | test AUPRO | test mean IoU | test class acc "
        "| stream acc | stream overkill | stream miss | stream IoU | stream goals |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, s, c = r["test"], r["stream"], r["split"]
        lines.append(
            f"| {r['run']} | {r['ok_per_part']} / {r['ng_per_defect']} | {r['good_calibration_fraction'] or 0.2} "
            f"| {c['train']['OK']}/{c['train']['NG']} | {r.get('good_share') or 'all'} "
            f"| {c['calibration']['OK']} | {r['steps']} | {r.get('seed', 0)} | {r['train_wall_s']:.0f} "
            f"| {t['miss_rate']:.3f} | {t['image_auroc']:.3f} | {t['aupro']:.3f} | {t['mean_iou_defective']:.3f} "
            f"| {t['class_accuracy']:.3f} | {s['accuracy']:.3f} | {s['overkill_rate']:.3f} | {s['miss_rate']:.3f} "
            f"| {s['mean_iou']:.3f} | {'met' if r['stream_goals_met'] else 'missed'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.line_recipe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("run", help="make one run (synth, ddqa, localization, export, station)")
    one.add_argument("out", type=Path)
    one.add_argument("--ok-per-part", type=int, default=60)
    one.add_argument("--ng-per-defect", type=int, default=24)
    one.add_argument("--steps", type=int, default=3000)
    one.add_argument("--good-calibration-fraction", type=float, default=None)
    one.add_argument("--good-share", type=float, default=None, help="localization.good_share (default: all)")
    one.add_argument("--seed", type=int, default=0, help="the training's seed (the line and its split stay seed 0)")
    table = sub.add_parser("report", help="the table of finished runs")
    table.add_argument("runs", type=Path, nargs="*")
    table.add_argument("--out", type=Path, default=Path("benchmarks/results/line_recipe"))
    table.add_argument("--from-results", action="store_true", help="rebuild from the committed RUN.json files")
    args = parser.parse_args(argv)
    if args.what == "run":
        run(
            args.out,
            args.ok_per_part,
            args.ng_per_defect,
            args.steps,
            args.good_calibration_fraction,
            args.good_share,
            args.seed,
        )
        return 0
    if args.from_results:
        rows = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(args.out.glob("*.json"))]
    else:
        rows = [collect(r) for r in args.runs]
        args.out.mkdir(parents=True, exist_ok=True)
        for row in rows:
            (args.out / f"{row['run']}.json").write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    text = report(rows)
    (args.out / "report.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
