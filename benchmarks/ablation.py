"""Ablation: what each change to the localization model bought, on one split, one budget.

    python -m benchmarks.ablation DDQA_DIR [--max-steps 2000] [--out benchmarks/results/ablation]

Trains the tiny preset once per row, each row adding one change to the row above (the
first row is the module as it was before them), every row with the same data, seed and
number of optimizer steps; each in its own process. A row is scored the way every figure
in this project is: thresholds on the calibration split, figures on the test split
(train/localization/finish.py). Each row's vision engine is also exported to ONNX and
timed at batch 1 on ONNX Runtime CPU (1 thread, median of per-round medians), so the cost
of a change sits beside what it bought. Writes result.json and report.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

# (row name, the localization config keys it sets, cumulative)
BEFORE = {
    "fine": False,
    "mask_pooling": False,
    "class_maps": False,
    "context": False,
    "skeleton_weight": 0.0,
    "camera_jitter": False,
    "focal_alpha": 0.75,
    "dice_weight": 1.0,
    "image_weight": 0.5,
}
ROWS = (
    ("before: H/4 decoder, global class head, focal + dice, flips", {}),
    ("+ camera jitter (shift, rotation, exposure, white balance, noise, blur)", {"camera_jitter": True}),
    ("+ H/2 decoder stage", {"fine": True}),
    ("+ skeleton recall loss", {"skeleton_weight": 1.0}),
    ("+ class head pooled under the predicted mask", {"mask_pooling": True}),
    ("+ dense class maps", {"class_maps": True}),
    ("+ balanced focal, dice x2, image loss x2", {"focal_alpha": 0.5, "dice_weight": 2.0, "image_weight": 1.0}),
    ("+ dilated H/4 conv (wider context)", {"context": True}),
)
FIGURES = (
    "accuracy",
    "miss_rate",
    "overkill_rate",
    "image_auroc",
    "pixel_auroc",
    "aupro",
    "mean_iou_defective",
    "class_accuracy",
)


def settings_of(row: int) -> dict:
    """The localization keys of row `row` (cumulative over the rows above it)."""
    keys = dict(BEFORE)
    for _, change in ROWS[: row + 1]:
        keys.update(change)
    return keys


def run_row(row: int, split: str, out: Path, max_steps: int, seed: int) -> dict:
    """Train (`eiad train --only localization`, as a user would), score and time one row;
    returns its figures."""
    from benchmarks.eiad_command import eiad

    keys = settings_of(row)
    folder = out / f"row{row}"
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "backbone": "tiny-minicpmv46",
        "split": str(Path(split).resolve()),
        "out_dir": str(folder.resolve()),
        "seed": seed,
        "device": "cpu",
        "localization": {
            "unfreeze_vision": True,
            "epochs": 1000,
            "max_steps": max_steps,
            "checkpoint_every_steps": 10**6,
            "num_workers": 1,
            **keys,
        },
    }
    (folder / "train.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    if eiad(["train", "--config", str(folder / "train.yaml"), "--only", "localization"]) != 0:
        raise SystemExit(f"row {row}: training failed")
    checkpoint = folder / "localization" / "checkpoint"
    metrics = json.loads((checkpoint.parent / "metrics.json").read_text(encoding="utf-8"))
    figures, report = metrics["metrics"], metrics["test"]
    artifact = out / f"row{row}" / "artifact"
    if (
        eiad(
            [
                "-q",
                "export",
                "onnx",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(artifact),
                "--split",
                split,
                "--force",
            ]
        )
        != 0
    ):
        raise SystemExit(f"row {row}: export failed")
    return {
        "row": row,
        "name": ROWS[row][0],
        "settings": keys,
        "steps": figures["steps"],
        "train_s": round(figures["train_wall_s"], 1),
        **{k: figures.get(k) for k in FIGURES},
        "aupro_by_defect": report["aupro_by_defect"],
        "engine_ms": engine_ms(artifact / "vision.onnx"),
    }


def engine_ms(onnx_path: Path, rounds: int = 15, calls: int = 20) -> float:
    """Median over rounds of the median batch-1 call, 1 ONNX Runtime thread (steadier on a shared box)."""
    return engine_ms_interleaved([onnx_path], rounds, calls)[0]


def engine_ms_interleaved(onnx_paths: list[Path], rounds: int = 15, calls: int = 20) -> list[float]:
    """`engine_ms` of several graphs timed in turn within each round, so that a slower or
    busier moment of the machine weighs on all of them alike."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in onnx_paths]
    images = []
    for session in sessions:
        shape = session.get_inputs()[0].shape
        images.append(np.random.default_rng(0).integers(0, 256, (1, shape[1], shape[2], 3), dtype=np.uint8))
        for _ in range(10):
            session.run(None, {"image": images[-1]})
    medians: list[list[float]] = [[] for _ in sessions]
    for _ in range(rounds):
        for index, (session, image) in enumerate(zip(sessions, images)):
            samples = []
            for _ in range(calls):
                started = time.perf_counter_ns()
                session.run(None, {"image": image})
                samples.append((time.perf_counter_ns() - started) / 1e6)
            medians[index].append(float(np.median(samples)))
    return [round(float(np.median(m)), 3) for m in medians]


def retime(work: Path, wanted: list[int]) -> list[dict]:
    """The rows kept in `work` (--keep of an earlier run) with every engine timed again, interleaved."""
    rows = []
    for row in wanted:
        path = work / f"row{row}.json"
        if not path.is_file():
            raise SystemExit(f"{path} not found: --retime needs the --keep folder of a finished run")
        rows.append(json.loads(path.read_text()))
    timed = engine_ms_interleaved([work / f"row{r}" / "artifact" / "vision.onnx" for r in wanted])
    return [{**row, "engine_ms": ms} for row, ms in zip(rows, timed)]


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"# Localization ablation ({meta['max_steps']} steps each, tiny-minicpmv46, seed {meta['seed']})",
        "",
        f"`{meta['command']}`"
        + (f"; engine ms timed again by `{meta['engine_ms_by']}`" if "engine_ms_by" in meta else ""),
        "",
        f"{meta['machine']}; split {meta['split']}; every figure on its test split, "
        "thresholds fitted on its calibration split",
        "",
        "| change | accuracy | miss | overkill | image AUROC | pixel AUROC | AUPRO | mean IoU | class acc | engine ms "
        "|",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        lines.append(f"| {r['name']} | " + " | ".join(fmt(r.get(k)) for k in FIGURES) + f" | {r['engine_ms']:.2f} |")
    first, last = rows[0]["engine_ms"], rows[-1]["engine_ms"]
    lines += [
        "",
        "Vision engine at batch 1 (ONNX Runtime CPU, 1 thread, all rows timed in turn): "
        f"{rows[-1]['name']} {last:.2f} ms vs {rows[0]['name']} {first:.2f} ms: {last / first:.2f}x (goal <= 1.5x: "
        f"{'met' if last <= 1.5 * first else 'MISSED'})",
    ]
    lines += [
        "",
        "AUPRO per defect type:",
        "",
        "| change | " + " | ".join(rows[0]["aupro_by_defect"]) + " |",
        "|---|" + "---|" * len(rows[0]["aupro_by_defect"]),
    ]
    for r in rows:
        lines.append(f"| {r['name']} | " + " | ".join(fmt(v) for v in r["aupro_by_defect"].values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ddqa", help="the DDQA folder (eiad data ddqa) or its split.json, e.g. demo_out/ddqa")
    parser.add_argument(
        "--max-steps", type=int, default=2000, help="optimizer steps per row (default 2000, the demo's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", default=None, help="comma-separated row numbers (default: all)")
    parser.add_argument("--out", default="benchmarks/results/ablation", help="result.json and report.md go here")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep each row's run and artifact in KEEP/row<N> (default: a temporary folder)",
    )
    parser.add_argument(
        "--retime",
        action="store_true",
        help="train nothing: time the vision engines kept in --keep again, all together and interleaved "
        "(a quiet machine's figures for the rows of an earlier run)",
    )
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)  # internal: one row, in a child process
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    split = args.ddqa if args.ddqa.endswith(".json") else str(Path(args.ddqa) / "split.json")
    if args.single is not None:
        row = run_row(args.single, split, Path(args.work), args.max_steps, args.seed)
        (Path(args.work) / f"row{args.single}.json").write_text(json.dumps(row, indent=2))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = [int(r) for r in args.rows.split(",")] if args.rows else list(range(len(ROWS)))
    command = "python -m benchmarks.ablation " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.retime:
        if args.keep is None:
            parser.error("--retime needs --keep: the folder of the run whose engines to time again")
        rows = retime(args.keep, wanted)
        earlier = json.loads((out / "result.json").read_text())["meta"] if (out / "result.json").is_file() else {}
        meta = {**earlier, "engine_ms_by": command}
        (out / "result.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
        (out / "report.md").write_text(markdown(rows, meta))
        print(markdown(rows, meta))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="eiad-ablation-") as tmp:
        work = str(args.keep) if args.keep else tmp
        Path(work).mkdir(parents=True, exist_ok=True)
        for row in wanted:
            print(f"row {row}: {ROWS[row][0]}", flush=True)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.ablation",
                    args.ddqa,
                    "--single",
                    str(row),
                    "--work",
                    work,
                    "--max-steps",
                    str(args.max_steps),
                    "--seed",
                    str(args.seed),
                ],
                check=True,
            )
            rows.append(json.loads((Path(work) / f"row{row}.json").read_text()))
    meta = {
        "max_steps": args.max_steps,
        "seed": args.seed,
        "split": split,
        "command": command,
        "machine": f"{platform.machine()} {__import__('os').cpu_count()} CPUs, python {platform.python_version()}",
    }
    (out / "result.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (out / "report.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
