"""Benchmark: train the localization module on the tiny preset of each backbone family.

    python -m benchmarks.train_tiny DDQA_DIR_OR_SPLIT [--budget-s 600] [--out runs/bench_train_tiny]

Each family trains in its own process (so peak memory, from resource.getrusage, is its
own) for at most --budget-s seconds of training, then is calibrated on the calibration
split and scored on the test split. Records wall time, peak RSS, test image AUROC, pixel
AUROC, AUPRO, mask IoU and class accuracy into results.json and results.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

FAMILIES = ("tiny-minicpmv46", "tiny-llava-siglip")
KEYS = ("image_auroc", "pixel_auroc", "aupro", "mask_iou", "class_accuracy")


def run_one(
    preset: str,
    split: str,
    out: Path,
    budget_s: float,
    device: str,
    epochs: int,
    batch: int,
    seed: int,
    overrides: dict | None = None,
) -> dict:
    """Train one preset in this process; returns its figures."""
    import torch

    from train.config import TrainConfig
    from train.localization.trainer import train_localization

    config = TrainConfig(
        backbone=preset,
        split=Path(split),
        out_dir=out / preset,
        device=device,
        seed=seed,
        localization={
            "unfreeze_vision": True,
            "epochs": epochs,
            "batch_size": batch,
            "time_budget_s": budget_s,
            "checkpoint_every_steps": 10**6,
            **(overrides or {}),
        },
    )
    started = time.perf_counter()
    result = train_localization(config)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    row = {
        "preset": preset,
        "steps": result.steps,
        "train_s": round(result.wall_s, 1),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_mb, 1),
        **{k: result.metrics.get(k) for k in KEYS},
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "overrides": overrides or {},
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        row["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return row


def _markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"# Tiny-preset localization training ({meta['budget_s']:.0f} s budget per family)",
        "",
        f"{meta['machine']}; python {meta['python']}; torch {meta['torch']}; split {meta['split']}",
        "",
        "| preset | steps | train s | wall s | peak RSS MB | image AUROC | pixel AUROC | AUPRO | mask IoU | class acc "
        "|",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        figures = " | ".join(f"{r[k]:.4f}" if isinstance(r.get(k), float) else str(r.get(k)) for k in KEYS)
        lines.append(
            f"| {r['preset']} | {r['steps']} | {r['train_s']} | {r['wall_s']} | {r['peak_rss_mb']} | {figures} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("split", help="split.json or the DDQA folder holding it (eiad data ddqa)")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated tiny presets")
    parser.add_argument("--budget-s", type=float, default=600.0, help="training time budget per family, seconds")
    parser.add_argument("--epochs", type=int, default=1000, help="epoch cap (the budget normally stops first)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench_train_tiny", help="output folder")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a localization config key (YAML value), e.g. --set vision_learning_rate=0.001",
    )
    parser.add_argument("--single", help=argparse.SUPPRESS)  # internal: one family, in a child process
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    split = args.split if args.split.endswith(".json") else str(Path(args.split) / "split.json")
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.single:
        row = run_one(
            args.single, split, out, args.budget_s, args.device, args.epochs, args.batch_size, args.seed, overrides
        )
        (out / f"{args.single}.json").write_text(json.dumps(row, indent=2))
        return 0
    rows = []
    for preset in args.families.split(","):
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.train_tiny",
            split,
            "--single",
            preset,
            "--budget-s",
            str(args.budget_s),
            "--epochs",
            str(args.epochs),
            "--batch-size",
            str(args.batch_size),
            "--device",
            args.device,
            "--seed",
            str(args.seed),
            "--out",
            str(out),
        ] + [f"--set={item}" for item in args.set]
        subprocess.run(cmd, check=True)
        rows.append(json.loads((out / f"{preset}.json").read_text()))
    import torch

    meta = {
        "budget_s": args.budget_s,
        "machine": f"{platform.machine()} {platform.processor() or ''} {__import__('os').cpu_count()} CPUs",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "split": split,
    }
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    (out / "results.md").write_text(_markdown(rows, meta))
    print(_markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
