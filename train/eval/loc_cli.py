"""`eiad eval localization`: metrics of a trained localization checkpoint on a split.

Nothing heavy at import time; torch loads inside the handler.
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    parser = sub.add_parser(
        "localization",
        help="image/pixel AUROC, AUPRO, mask IoU/F1 and class accuracy of a localization checkpoint",
        description="Run a localization checkpoint over a split (val by default) and print image AUROC, "
                    "pixel AUROC, AUPRO (up to 30%% FPR), mask IoU/F1 at the checkpoint's calibrated pixel "
                    "threshold and defect-class accuracy. Writes a grid PNG (image | ground truth | map).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (OUT/localization/checkpoint)")
    parser.add_argument("--split", required=True, help="split.json of a DDQA build (or its folder)")
    parser.add_argument("--which", choices=("val", "train"), default="val", help="which part of the split to score")
    parser.add_argument("--pixel-threshold", type=float, help="pixel threshold (default: the checkpoint's calibrated one)")
    parser.add_argument("--grid", default=None, help="grid PNG path (default: beside the checkpoint, eval_grid.png)")
    parser.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.set_defaults(func=_run)


def _run(args) -> int:
    import json
    from pathlib import Path

    from eiad.errors import ConfigError
    from train.data.index import load_split
    from train.eval.localization_eval import metrics_of, predict, save_grid
    from train.loc_data import LocalizationDataset
    from train.localization import engine_from_checkpoint

    engine, saved = engine_from_checkpoint(Path(args.checkpoint), device=args.device)
    threshold = args.pixel_threshold
    if threshold is None:
        if not saved.thresholds:
            raise ConfigError(f"{args.checkpoint} has no calibrated thresholds: pass --pixel-threshold")
        threshold = float(saved.thresholds["pixel"])
    split = load_split(Path(args.split))
    data = LocalizationDataset(split, args.which, engine.height, engine.width)
    pred = predict(engine, data, batch_size=args.batch_size, device=args.device, keep_images=True)
    metrics = metrics_of(pred, threshold)
    print(f"{args.which}: {pred.labels.size} images ({int(pred.labels.sum())} NG)")
    for key, value in metrics.items():
        print(f"  {key:16s} {value:.4f}")
    grid = Path(args.grid) if args.grid else Path(args.checkpoint).parent / "eval_grid.png"
    save_grid(pred, grid, pixel_threshold=threshold)
    print(f"grid: {grid}")
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2) + "\n")
    return 0
