"""Record what `make demo` measured: the model's test-split report and the station's
verdicts on the line's 300-part stream, judged on the line's goals.

    make demo && python -m benchmarks.demo_quality demo_out [--out benchmarks/results/demo]

Reads `demo_out/train/localization/metrics.json` (thresholds from the calibration split,
figures on the test split), `demo_out/edge/summary.json` (what the PLC received, scored
against the stream's ground truth) and the demo's step markers (wall time per step), and
writes `result.json` and `report.md` (the figures README and docs quote) and
`edge_summary.txt` (the station's summary as `eiad edge demo` prints it).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from edge.demo.report import format_summary
from eiad.line_goals import format_errors_by_part, format_goals

MARKER = ".eiad-demo-step.json"
GOALS = {"aupro": ("AUPRO", ">=", 0.90), "class_accuracy": ("class accuracy", ">=", 0.90)}


def _load(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"{path} not found: run 'make demo' first")
    return json.loads(path.read_text(encoding="utf-8"))


def _optional(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def collect(demo: Path) -> dict:
    metrics = _load(demo / "train" / "localization" / "metrics.json")
    summary = _load(demo / "edge" / "summary.json")
    test = metrics["test"]
    model_goals = {
        k: {
            "goal": f"{label} {op} {bound}",
            "value": test.get(k),
            "met": test.get(k) is not None and (test[k] >= bound if op == ">=" else test[k] <= bound),
        }
        for k, (label, op, bound) in GOALS.items()
    }
    steps = {}
    for folder in ("line", "ddqa", "train", "merged", "artifact", "edge"):
        marker = demo / folder / MARKER
        saved = json.loads(marker.read_text()) if marker.is_file() else {}
        steps[folder] = {"summary": saved.get("summary"), "seconds": saved.get("seconds")}
    seconds = [s["seconds"] for s in steps.values()]
    return {
        "demo": str(demo),
        "machine": f"{platform.machine()} {__import__('os').cpu_count()} CPUs",
        "test_split": {
            k: test[k]
            for k in (
                "images",
                "defective_images",
                "verdicts",
                "image_auroc",
                "pixel_auroc",
                "aupro",
                "aupro_by_defect",
                "mask_iou",
                "mean_iou_defective",
                "class_accuracy",
                "per_class",
                "class_publishing",
            )
        },
        "thresholds": metrics["thresholds"],
        "model_goals": model_goals,
        "stream": {
            "parts": summary["frames"],
            "all_received": summary["all_received"],
            "accuracy": summary["accuracy"],
            "quality": summary["quality"],
            "latency_ms": summary["latency_ms"]["capture_to_plc"],
            "explanations": (summary.get("explanations") or {}).get("quality"),
        },
        "dialog_test": _optional(demo / "train" / "dialog" / "explanations.json"),
        "steps": steps,
        "first_run_s": round(sum(seconds), 1) if all(s is not None for s in seconds) else None,
    }


def markdown(result: dict) -> str:
    test, stream = result["test_split"], result["stream"]
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    image = stream["accuracy"]["image"]
    lines = [
        "# The demo's model and line (`make demo`)",
        "",
        "`make demo && python -m benchmarks.demo_quality demo_out`",
        "",
        f"{result['machine']}",
        "",
        "## The station on the line's stream (what the PLC received, against the ground truth)",
        "",
        f"{stream['parts']} parts, all received: {stream['all_received']}; confusion (truth -> verdict) "
        f"{json.dumps(image['confusion'])}",
        "",
        f"- {format_goals(stream['quality'])}",
        *(
            [f"- wrong verdicts by part type: {format_errors_by_part(image['by_part'])}"]
            if image.get("by_part")
            else []
        ),
        f"- defect class right on {pct(stream['accuracy']['class_agreement'])} of the rejected defective parts, "
        f"'unknown' on {pct(stream['accuracy']['class_unknown'])}",
        f"- capture -> PLC p50 {stream['latency_ms'].get('p50')} ms, p99 {stream['latency_ms'].get('p99')} ms",
        *_explanation_lines("the station's explanations of its NG parts", stream.get("explanations")),
        "",
        f"## The model on the DDQA test split ({test['images']} images, {test['defective_images']} defective)",
        "",
        f"Thresholds from the calibration split: {result['thresholds']['calibration']}",
        "",
        "| figure | value | goal |",
        "|---|---|---|",
    ]
    rows = [
        ("accuracy", test["verdicts"]["accuracy"]),
        ("miss rate", test["verdicts"]["miss_rate"]),
        ("overkill rate", test["verdicts"]["overkill_rate"]),
        ("image AUROC", test["image_auroc"]),
        ("pixel AUROC", test["pixel_auroc"]),
        ("AUPRO", test["aupro"]),
        ("mask IoU (pooled)", test["mask_iou"]),
        ("mean IoU per defective image", test["mean_iou_defective"]),
        ("class accuracy", test["class_accuracy"]),
    ]
    goals = {"AUPRO": result["model_goals"]["aupro"], "class accuracy": result["model_goals"]["class_accuracy"]}
    for name, value in rows:
        goal = goals.get(name)
        lines.append(
            f"| {name} | {value:.3f} | "
            + (f"{goal['goal']}: {'met' if goal['met'] else 'MISSED'}" if goal else "-")
            + " |"
        )
    lines += [
        "",
        "AUPRO per defect type: " + ", ".join(f"{k} {v:.3f}" for k, v in test["aupro_by_defect"].items()),
        "",
        "| class | precision | recall | support |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {pct(v['precision'])} | {pct(v['recall'])} | {v['support']} |" for k, v in test["per_class"].items()
    ]
    pub = test["class_publishing"]
    lines += [
        "",
        f"Classes published at confidence >= {pub['cutoff']:.3f}: {pct(pub['published_share'])} of the test "
        f"defects, right {pct(pub['published_accuracy'])} of the time.",
        "",
        *_explanation_lines(
            "the dialog model's answers to the explainer's question on test images (training report)",
            result.get("dialog_test"),
        ),
        "",
        "## Steps",
        "",
    ]
    lines += [f"- {k}: {v['seconds']} s: {v['summary']}" for k, v in result["steps"].items()]
    if result["first_run_s"] is not None:
        lines += [
            "",
            f"A first run's steps took {result['first_run_s']:.0f} s in all ({result['first_run_s'] / 60:.1f} min; "
            "each step's own time, from its marker).",
        ]
    return "\n".join(lines) + "\n"


def _explanation_lines(what: str, q: dict | None) -> list[str]:
    if not q:
        return []
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    lines = [
        f"- {what}: median {q['median_words']} words; consistent {pct(q['consistent'])}; class+location agree "
        f"{pct(q['class_location_agreement'])}; vs the true mask: shape {pct(q['shape_agreement'])}, "
        f"appearance {pct(q['appearance_agreement'])}",
        f"  - explanation {format_goals(q['judged'])}",
    ]
    for example in q.get("examples", []):
        lines.append(
            f"  - {Path(example['image']).name} ({example['verdict']}, {example['class']}; truth "
            f'{json.dumps(example["truth"])}): "{example["explanation"]}" (consistent {example["consistent"]})'
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demo", type=Path, help="the demo's output folder (make demo: demo_out)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/demo"))
    args = parser.parse_args(argv)
    result = collect(args.demo)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (args.out / "report.md").write_text(markdown(result), encoding="utf-8")
    summary = _load(args.demo / "edge" / "summary.json")
    (args.out / "edge_summary.txt").write_text(format_summary(summary) + "\n", encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
