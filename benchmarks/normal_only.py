"""A line with no defect samples: the normal-only model beside anomalib's PatchCore, one run.

    python -m benchmarks.normal_only demo_out/ddqa [--max-steps 3000] [--out benchmarks/results/normal_only]

1. `eiad train --normal-only` on the split's good training images (pseudo-defects + the
   bank of good patches), thresholds from the good calibration images;
2. `eiad export onnx` of that model (bank inside the graph);
3. `eiad bench engine ARTIFACT --split ... --baselines anomalib --batch 1` on the split's
   test images: our engine's latency and image/pixel AUROC beside anomalib's PatchCore,
   fitted on the same split's good training images, with the sizing given here
   (`--anomalib-train-images`, `--anomalib-coreset-ratio`; resnet18 with random weights:
   no download offline).

Writes result.json and report.md: the test split's figures (image and pixel AUROC, AUPRO,
verdicts), the bank's size, the export's size, the CPU latency, anomalib's figures, its
fit time and peak memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


def parts_of_the_fusion(checkpoint: Path, artifact: Path, split: Path, limit: int) -> dict:
    """Image and pixel AUROC on the test split of the module alone, the bank alone and the
    fused graph: what each half of the normal-only model contributes."""
    import numpy as np
    import torch

    from benchmarks.baselines.anomalib_baseline import image_auroc, pixel_auroc
    from benchmarks.held_out import evaluation_images, evaluation_labels, evaluation_masks
    from eiad.manifest import load_manifest
    from eiad.modeling.checkpoint import engine_from_checkpoint

    manifest = load_manifest(artifact)
    images, _ = evaluation_images(manifest, split, limit)
    labels, masks = evaluation_labels(split, limit), evaluation_masks(manifest, split, limit)
    engine, _ = engine_from_checkpoint(checkpoint)
    module, head, bank, bank_score = [], [], [], []
    with torch.no_grad():
        for start in range(0, len(images), 16):
            halves = engine.halves(torch.from_numpy(images[start : start + 16]))
            module.append(torch.sigmoid(halves.module.mask_logits)[:, 0].numpy())
            head.append(torch.sigmoid(halves.module.image_logit).numpy())
            bank.append(halves.bank_map[:, 0].numpy())
            bank_score.append(halves.bank_score.numpy())
    module, head, bank, bank_score = (np.concatenate(x) for x in (module, head, bank, bank_score))
    return {
        "module": {"image_auroc": image_auroc(head, labels), "pixel_auroc": pixel_auroc(module, masks)},
        "bank": {"image_auroc": image_auroc(bank_score, labels), "pixel_auroc": pixel_auroc(bank, masks)},
        "fused": {
            "image_auroc": image_auroc(np.maximum(head, bank_score), labels),
            "pixel_auroc": pixel_auroc(np.maximum(module, bank), masks),
        },
    }


def run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ddqa", type=Path, nargs="?", help="DDQA folder (eiad data ddqa), e.g. demo_out/ddqa")
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument(
        "--pseudo-kinds",
        nargs="+",
        default=None,
        help="pseudo-defect kinds drawn in training (default: the config's, all four)",
    )
    parser.add_argument("--eval-images", type=int, default=155, help="test images both sides are scored and timed on")
    parser.add_argument("--anomalib-train-images", type=int, default=64)
    parser.add_argument("--anomalib-coreset-ratio", type=float, default=0.1)
    parser.add_argument("--work", type=Path, default=None, help="keep the run here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/normal_only"))
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite OUT/report.md from OUT/result.json (no run)"
    )
    args = parser.parse_args(argv)
    if args.render_only:
        if not (args.out / "result.json").is_file():
            parser.error(f"--render-only: {args.out / 'result.json'} does not exist; run the benchmark first")
        result = json.loads((args.out / "result.json").read_text(encoding="utf-8"))
        (args.out / "report.md").write_text(markdown(result), encoding="utf-8")
        return 0
    if args.ddqa is None:
        parser.error("give the DDQA folder (e.g. demo_out/ddqa)")
    eiad = [sys.executable, "-m", "commands.main"]
    with tempfile.TemporaryDirectory(prefix="eiad-normal-only-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        config = {
            "backbone": "tiny-minicpmv46",
            "ddqa_dir": str(args.ddqa.resolve()),
            "out_dir": str(work / "train"),
            "seed": 0,
            "device": "cpu",
            "dialog": None,
            "localization": {"unfreeze_vision": True, "epochs": 1000, "max_steps": args.max_steps, "num_workers": 1},
        }
        if args.pseudo_kinds:
            config["localization"]["pseudo_defect_kinds"] = args.pseudo_kinds
        (work / "train.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        run(eiad + ["train", "--config", str(work / "train.yaml"), "--only", "localization", "--normal-only"])
        checkpoint = work / "train" / "localization" / "checkpoint"
        artifact = work / "artifact"
        run(
            eiad
            + [
                "-q",
                "export",
                "onnx",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(artifact),
                "--split",
                str(args.ddqa / "split.json"),
                "--force",
            ]
        )
        run(
            eiad
            + [
                "bench",
                "engine",
                str(artifact),
                "--backends",
                "ort-cpu",
                "--batch",
                "1",
                "--split",
                str(args.ddqa / "split.json"),
                "--eval-images",
                str(args.eval_images),
                "--baselines",
                "anomalib",
                "--anomalib-train-images",
                str(args.anomalib_train_images),
                "--anomalib-coreset-ratio",
                str(args.anomalib_coreset_ratio),
                "--min-duration-s",
                "5",
                "--out",
                str(work / "bench"),
            ]
        )
        metrics = json.loads((checkpoint.parent / "metrics.json").read_text())
        fusion = parts_of_the_fusion(checkpoint, artifact, args.ddqa / "split.json", args.eval_images)
        meta = json.loads((checkpoint / "meta.json").read_text())
        bench = json.loads((work / "bench" / "result.json").read_text())
        onnx_bytes = sum(p.stat().st_size for p in artifact.glob("vision.onnx*"))
    bank = meta["normal_bank_spec"]
    result = {
        "command": "python -m benchmarks.normal_only " + " ".join(argv if argv is not None else sys.argv[1:]),
        "test_split": {
            k: metrics["test"][k]
            for k in (
                "images",
                "defective_images",
                "verdicts",
                "image_auroc",
                "pixel_auroc",
                "aupro",
                "aupro_by_defect",
                "image_auroc_by_defect",
                "mean_iou_defective",
            )
        },
        "pseudo_kinds": args.pseudo_kinds,
        "thresholds": metrics["thresholds"],
        "steps": metrics["metrics"]["steps"],
        "fusion_parts": fusion,
        "bank": {
            "entries": bank["size"],
            "dim": bank["dim"],
            "taps": bank["taps"],
            "bytes": bank["size"] * bank["dim"] * 4,
        },
        "export_bytes": onnx_bytes,
        "engine": [
            {"name": c["name"], "latency_ms": c["latency_ms"], "throughput_per_s": c["throughput_per_s"]}
            for c in bench["configurations"]
            if c.get("group") == "engine"
        ],
        "anomalib": [
            {
                "name": c["name"],
                "latency_ms": c["latency_ms"],
                "throughput_per_s": c["throughput_per_s"],
                "accuracy": c["accuracy"],
            }
            for c in bench["configurations"]
            if c.get("group") == "baseline-anomalib"
        ],
        "anomalib_settings": bench["settings"].get("anomalib"),
        "comparisons": bench["comparisons"],
        "notes": bench["notes"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (args.out / "report.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


def markdown(r: dict) -> str:
    t = r["test_split"]
    f = lambda v: "-" if v is None or v != v else f"{v:.3f}"  # noqa: E731
    lines = [
        "# A line with no defect samples: normal-only model vs anomalib PatchCore",
        "",
        f"`{r['command']}`",
        "",
        f"Test split: {t['images']} images ({t['defective_images']} defective); thresholds from the good calibration "
        f"images only ({r['thresholds']['calibration']}).",
        "",
        "| model | image AUROC | pixel AUROC | p50 ms (b1, CPU) | images/s |",
        "|---|---|---|---|---|",
    ]
    for c in r["engine"]:
        lines.append(
            f"| ours, normal-only ({c['name']}) | {f(t['image_auroc'])} | {f(t['pixel_auroc'])} | "
            f"{c['latency_ms']['p50_ms']:.2f} | {c['throughput_per_s']:.1f} |"
        )
    for c in r["anomalib"]:
        acc = c["accuracy"]
        lines.append(
            f"| {c['name']} ({acc['backbone']}) | {f(acc['image_auroc'])} | {f(acc.get('pixel_auroc'))} | "
            f"{c['latency_ms']['p50_ms']:.2f} | {c['throughput_per_s']:.1f} |"
        )
    v = t["verdicts"]
    parts = r["fusion_parts"]
    kinds = r.get("pseudo_kinds") or ["scar", "patch", "foreign", "stroke"]
    lines += [
        "",
        "What each half of ours contributes (test split): "
        + "; ".join(
            f"{k}: image AUROC {f(x['image_auroc'])}, pixel AUROC {f(x['pixel_auroc'])}" for k, x in parts.items()
        )
        + ".",
    ]
    lines += [
        "",
        f"Ours at the calibrated threshold: accuracy {f(v['accuracy'])}, miss {f(v['miss_rate'])}, overkill "
        f"{f(v['overkill_rate'])}; AUPRO {f(t['aupro'])}.",
        "",
        "| per defect type (test split) | "
        + " | ".join(t["image_auroc_by_defect"])
        + " |\n|---|"
        + "---|" * len(t["image_auroc_by_defect"])
        + "\n| image AUROC | "
        + " | ".join(f(x) for x in t["image_auroc_by_defect"].values())
        + " |\n| AUPRO | "
        + " | ".join(f(t["aupro_by_defect"].get(k)) for k in t["image_auroc_by_defect"])
        + " |",
        "",
        f"Pseudo-defects drawn in training: {', '.join(kinds)} "
        "(train/localization/pseudo_defects.py). The stroke, a thin line of one flat colour, was added after a model "
        "trained without it missed most of this split's scratches (without_stroke/report.md: the same command with "
        "--pseudo-kinds scar patch foreign), so the thin-defect figures are not independent of that choice.",
        "",
        f"Bank: {r['bank']['entries']} entries x {r['bank']['dim']} (taps {r['bank']['taps']}), "
        f"{r['bank']['bytes'] / 1e6:.2f} MB of the exported graph's {r['export_bytes'] / 1e6:.2f} MB.",
        f"anomalib sizing: {json.dumps(r['anomalib_settings'])}",
        "",
        "Notes:",
        "",
    ]
    lines += [f"- {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
