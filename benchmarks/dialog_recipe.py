"""What the demo's dialog recipe is made of: dialog-only runs on one localization run, side by side.

Each run is `eiad train --config RUN/train.yaml --only dialog` with the same finished
localization copied into RUN/train/localization (so every run explains the same verdicts
and masks), differing only in the `dialog:` keys. This reads each run's config, its
`train/dialog/metrics.json` (steps, wall time, held-out answer loss) and its explanation
report (`train/dialog/explanations.json`: the trained model asked the grounded question on
held-out test images and checked) and writes a table:

    python -m benchmarks.dialog_recipe RUN [RUN ...] [--out benchmarks/results/dialog_recipe]

The run folders' reports are copied beside the table (RUN_NAME.json), so the table can be
regenerated from the committed files with `--from-results`.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import yaml

KEYS = (
    "max_steps",
    "lora_dropout",
    "ddqa_share",
    "learning_rate",
    "lora_rank",
    "ddqa_tasks",
    "grounded_counterfactuals",
    "grounded_figures",
)


def collect(run: Path) -> dict:
    dialog = run / "train" / "dialog"
    for needed in (
        run / "train.yaml",
        dialog / "dialog_config.json",
        dialog / "metrics.json",
        dialog / "explanations.json",
    ):
        if not needed.is_file():
            raise SystemExit(f"{needed} not found: run 'eiad train --config {run / 'train.yaml'} --only dialog' first")
    config = yaml.safe_load((run / "train.yaml").read_text(encoding="utf-8"))
    used = json.loads((dialog / "dialog_config.json").read_text(encoding="utf-8"))["config"]  # defaults filled in
    metrics = json.loads((dialog / "metrics.json").read_text(encoding="utf-8"))
    report = json.loads((dialog / "explanations.json").read_text(encoding="utf-8"))
    return {
        "run": run.name,
        "seed": config.get("seed", 0),
        "dialog": {k: used.get(k) for k in KEYS},
        "steps": metrics["steps"],
        "wall_time_s": round(metrics["wall_time_s"], 1),
        "held_out_answer_loss": round(metrics["loss_after"], 4),
        "explanations": {k: v for k, v in report.items() if k not in ("examples", "judged")},
        "goals_met": report["judged"]["passed"],
    }


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _figures(row: dict) -> str:
    return "no" if row["dialog"].get("grounded_figures") is False else "yes"


def report(rows: list[dict]) -> str:
    lines = [
        "# Dialog recipe runs (one localization run, dialog settings varied)",
        "",
        "`python -m benchmarks.dialog_recipe RUN ...` after `eiad train --config RUN/train.yaml --only dialog`",
        f"per run; {platform.machine()}. Explanations: the trained model's answers to the grounded",
        "question on held-out test images, read back by the checker (% of NG explanations; consistent:",
        "% of all 50 answers, OK parts included, stated figures checked). figures: whether the grounded",
        "answers state the share of the image and the pixel count. Wall times are single runs on a",
        "shared 2-core machine; some had another job beside them (their wall time says so).",
        "",
        "| run | seed | steps | dropout | DDQA share | figures | wall s | held-out loss | class+location | shape "
        "| appearance | consistent | goals |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        e = r["explanations"]
        lines.append(
            f"| {r['run']} | {r['seed']} | {r['steps']} | {r['dialog']['lora_dropout']} | "
            f"{r['dialog'].get('ddqa_share') or 'all'} | {_figures(r)} | {r['wall_time_s']} | "
            f"{r['held_out_answer_loss']} | {_pct(e['class_location_agreement'])} | {_pct(e['shape_agreement'])} | "
            f"{_pct(e['appearance_agreement'])} | {_pct(e['consistent'])} | {'met' if r['goals_met'] else 'MISSED'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run folders (each with train.yaml and train/dialog)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dialog_recipe"))
    parser.add_argument("--from-results", action="store_true", help="rebuild the table from --out's run files")
    args = parser.parse_args(argv)
    if args.from_results:
        rows = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(args.out.glob("run_*.json"))]
    else:
        if not args.runs:
            parser.error("give run folders, or --from-results")
        rows = [collect(run) for run in args.runs]
        args.out.mkdir(parents=True, exist_ok=True)
        for row in rows:
            (args.out / f"run_{row['run']}.json").write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    (args.out / "report.md").write_text(report(rows), encoding="utf-8")
    print(report(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
