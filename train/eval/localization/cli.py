"""`eiad eval localization`: metrics of a trained localization checkpoint on a split.

Nothing heavy at import time; torch loads inside the handler.
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    parser = sub.add_parser(
        "localization",
        help="verdicts, AUROC, AUPRO, masks and classes of a localization checkpoint on the test split",
        description="Run a localization checkpoint over the test split of a DDQA build and print, at the "
        "checkpoint's thresholds (fitted on the calibration split): accuracy, miss and overkill rates; "
        "image and pixel AUROC; AUPRO up to 30%% FPR, overall and per defect type; mask IoU/F1; "
        "class accuracy, per-class precision/recall and what the class-confidence cut-off publishes. "
        "Writes a grid PNG (image | ground truth | map | mask). The calibration split is not offered: "
        "a figure on the images the thresholds were fitted on is not a held-out figure.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (OUT/localization/checkpoint)")
    parser.add_argument("--split", required=True, help="split.json of a DDQA build (or its folder)")
    parser.add_argument(
        "--which",
        choices=("test", "train"),
        default="test",
        help="which part of the split to score (train: to see how far test is from it)",
    )
    parser.add_argument(
        "--pixel-threshold", type=float, help="pixel threshold (default: the checkpoint's calibrated one)"
    )
    parser.add_argument("--grid", default=None, help="grid PNG path (default: beside the checkpoint, eval_grid.png)")
    parser.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.set_defaults(func=_run)


def _run(args) -> int:
    import json
    from pathlib import Path

    from eiad.errors import ConfigError
    from eiad.modeling.checkpoint import engine_from_checkpoint
    from eiad.split import load_split
    from train.eval.localization.predict import predict, save_grid
    from train.eval.localization.quality import format_quality, quality_report
    from train.localization.data import LocalizationDataset

    engine, saved = engine_from_checkpoint(Path(args.checkpoint), device=args.device)
    if not saved.thresholds:
        raise ConfigError(f"{args.checkpoint} has no calibrated thresholds: finish training (calibration) first")
    thresholds = dict(saved.thresholds)
    if args.pixel_threshold is not None:
        thresholds["pixel"] = args.pixel_threshold
    split = load_split(Path(args.split))
    data = LocalizationDataset(split, args.which, engine.height, engine.width)
    pred = predict(engine, data, batch_size=args.batch_size, device=args.device, keep_images=True)
    report = quality_report(pred, thresholds, list(split.classes), args.which)
    print(format_quality(report))
    grid = Path(args.grid) if args.grid else Path(args.checkpoint).parent / f"eval_grid_{args.which}.png"
    save_grid(pred, grid, pixel_threshold=thresholds["pixel"])
    print(f"grid: {grid}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
