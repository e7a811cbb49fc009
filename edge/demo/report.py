"""Scoring for `eiad edge demo`: what the PLC received against the line's ground truth.

Pure functions over plain values (confusion counts, masks, nanosecond stamps) plus
`build_summary`, which assembles them into the dict written as `summary.json`, and
`format_summary`, the terminal's text of it. Latencies are in ms, rates are fractions
rounded to 4 places (None when their denominator is 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.demo.camera import LineFiles, Shots, truth_mask, truth_of
from edge.demo.explanations import score_explanations
from edge.demo.live_view import Received
from edge.verdict import UNKNOWN_CLASS
from eiad.line_goals import format_errors_by_part, format_goals, judge, score_image
from eiad.manifest import Manifest

if TYPE_CHECKING:  # demo.py imports this module: its types only for annotations
    from edge.demo.options import DemoOptions
    from edge.demo.recorder import Recorder
    from edge.sinks.mqtt.broker import LocalBroker

# (stage, stamp it starts at, stamp it ends at): they add up to capture -> PLC.
STAGES = (
    ("capture", "captured", "queued"),
    ("queue", "queued", "dequeued"),
    ("preprocess", "dequeued", "preprocessed"),
    ("inference", "preprocessed", "inferred"),
    ("postprocess", "inferred", "decided"),
    ("sinks+outbox", "decided", "outboxed"),
    ("broker->PLC", "outboxed", "received"),
)


def received_summary(received: Received) -> dict:
    return {
        "verdicts": len(received.verdicts),
        "masks": len(received.masks),
        "explanations": len(received.explanations),
        "duplicates_dropped": received.duplicates,
        "undecodable": received.undecodable,
    }


def percentiles_ms(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {}
    a = np.asarray(values_ms, float)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "count": int(a.size),
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(a.max()), 3),
        "mean": round(float(a.mean()), 3),
    }


def latency_summary(recorder: Recorder, received: Received) -> dict:
    """Capture -> verdict received by the PLC, and each stage between, in ms."""
    per_stage: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    total: list[float] = []
    for inspection_id, record in recorder.results.items():
        stamps = dict(record["stamps"])
        if inspection_id in received.verdict_ns:
            stamps["received"] = received.verdict_ns[inspection_id]
            total.append((stamps["received"] - stamps["captured"]) / 1e6)
        for name, start, end in STAGES:
            if start in stamps and end in stamps:  # a REJECTED frame skips inference
                per_stage[name].append((stamps[end] - stamps[start]) / 1e6)
    return {"capture_to_plc": percentiles_ms(total), "stages": {k: percentiles_ms(v) for k, v in per_stage.items()}}


def iou(predicted: np.ndarray | None, truth: np.ndarray) -> float:
    """IoU of a published mask (any size; resized to the truth's) with a truth mask; no mask -> 0."""
    import cv2

    if predicted is None:
        return 0.0
    if predicted.shape != truth.shape:
        predicted = cv2.resize(predicted, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_NEAREST)
    p = predicted > 0
    union = np.logical_or(p, truth).sum()
    return float(np.logical_and(p, truth).sum() / union) if union else 1.0


def score_pixels(items: list[tuple[np.ndarray | None, np.ndarray]]) -> dict:
    """Mean IoU over the NG parts (a part with no published mask scores 0) and over those with one."""
    values = [iou(p, t) for p, t in items]
    detected = [iou(p, t) for p, t in items if p is not None]
    return {
        "ng_parts": len(items),
        "with_mask": len(detected),
        "mean_iou": round(float(np.mean(values)), 4) if values else None,
        "mean_iou_with_mask": round(float(np.mean(detected)), 4) if detected else None,
    }


def build_summary(
    opts: DemoOptions,
    manifest: Manifest,
    line: LineFiles,
    broker: LocalBroker,
    frames: int,
    fps: float,
    shots: Shots,
    recorder: Recorder,
    received: Received,
    elapsed_s: float,
) -> dict:
    ordered = sorted(recorder.results.items(), key=lambda kv: kv[1]["sequence"])
    pairs, pixel_items, classes = [], [], [0, 0, 0]  # NG parts called NG with a class truth, right, 'unknown'
    for inspection_id, record in ordered:
        payload = received.verdicts.get(inspection_id)
        if payload is None:
            continue
        truth = truth_of(shots, record["frame_id"])
        pairs.append((truth, payload["verdict"]))
        gt = truth_mask(truth, line)
        if gt is not None:
            pixel_items.append((received.masks.get(inspection_id), gt))
        if truth and truth.get("label") == "NG" and payload["verdict"] == "NG" and truth.get("defect"):
            classes[0] += 1
            classes[1] += int(payload.get("defect_class") == truth["defect"])
            classes[2] += int(payload.get("defect_class") == UNKNOWN_CLASS)
    arrivals = [received.verdict_ns[i] for i in recorder.results if i in received.verdict_ns]
    firsts = [r["stamps"]["captured"] for r in recorder.results.values() if "captured" in r["stamps"]]
    span_s = (max(arrivals) - min(firsts)) / 1e9 if arrivals and firsts else 0.0
    by_verdict: dict[str, int] = {}
    for payload in received.verdicts.values():
        by_verdict[payload["verdict"]] = by_verdict.get(payload["verdict"], 0) + 1
    explained = [
        {"inspection_id": i, "text": e.get("text", ""), "consistent": e.get("consistent")}
        for i, e in list(received.explanations.items())[:3]
    ]
    judged_texts = []
    for inspection_id, explanation in received.explanations.items():
        record = recorder.results.get(inspection_id)
        payload = received.verdicts.get(inspection_id)
        if record is None or payload is None or payload["verdict"] != "NG":
            continue
        truth = truth_of(shots, record["frame_id"])
        judged_texts.append(
            {
                "text": explanation.get("text", ""),
                "consistent": explanation.get("consistent"),
                "disagreements": explanation.get("disagreements") or [],
                "truth": truth,
                "truth_mask": truth_mask(truth, line),
            }
        )
    ratio = lambda a, b: round(a / b, 4) if b else None  # noqa: E731
    accuracy = {
        "image": score_image(pairs),
        "pixel": score_pixels(pixel_items),
        # among defective parts rejected as NG: class named right, and published as 'unknown'
        "class_agreement": ratio(classes[1], classes[0]),
        "class_unknown": ratio(classes[2], classes[0]),
    }
    return {
        "artifact": {
            "path": str(opts.artifact),
            "model_id": manifest.model_id,
            "input_px": [manifest.input.width, manifest.input.height],
        },
        "line": {
            "path": str(line.folder),
            "video": str(line.video),
            "frames_in_video": len(line.truth),
            "frame_px": list(line.size_wh),
        },
        "broker": {"kind": broker.kind, "detail": broker.detail, "mqtt": broker.protocol},
        "frames": recorder.count(),
        "frames_requested": frames,
        "fps_target": fps,
        "late_triggers": shots.late,
        "verdicts_received": len(received.verdicts),
        "verdicts_by_kind": by_verdict,
        "received": received_summary(received),
        "all_received": len(received.verdicts) == recorder.count() == frames,
        "elapsed_s": round(elapsed_s, 3),
        "throughput_fps": round(len(arrivals) / span_s, 2) if span_s > 0 else None,
        "latency_ms": latency_summary(recorder, received),
        "accuracy": accuracy,
        "quality": judge({**accuracy["image"], "mean_iou": accuracy["pixel"]["mean_iou"]}),
        "explanations": {
            "enabled": opts.explain,
            "produced": len(recorder.explained),
            "received": len(received.explanations),
            "examples": explained,
            "quality": score_explanations(judged_texts, manifest.class_names, line.video) if judged_texts else None,
        },
    }


def format_summary(s: dict) -> str:
    """The summary as the terminal shows it."""
    img, pix = s["accuracy"]["image"], s["accuracy"]["pixel"]
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    lat = s["latency_ms"]

    def row(name, p):
        nan = float("nan")
        return f"  {name:<22}{p.get('p50', nan):>9.2f}{p.get('p95', nan):>9.2f}{p.get('p99', nan):>9.2f}"

    c = img["confusion"]
    lines = [
        f"model {s['artifact']['model_id']} on {s['line']['frames_in_video']}-frame line {s['line']['path']}; broker "
        f"{s['broker']['kind']} ({s['broker']['detail']}, MQTT {s['broker']['mqtt']})",
        f"frames {s['frames']} / requested {s['frames_requested']}; verdicts received by the PLC "
        f"{s['verdicts_received']} "
        f"({'all' if s['all_received'] else 'MISSING SOME'}); duplicates dropped {s['received']['duplicates_dropped']}",
        f"throughput {s['throughput_fps'] or 0:.1f} frames/s (camera target {s['fps_target']:g} fps, "
        f"{s['late_triggers']} late triggers); run {s['elapsed_s']:.1f} s",
        "latency ms                 p50      p95      p99",
        row("capture -> PLC", lat["capture_to_plc"]),
        *[row(f"  {name}", p) for name, p in lat["stages"].items() if p],
        f"accuracy {pct(img['accuracy'])}  miss rate {pct(img['miss_rate'])}  overkill rate "
        f"{pct(img['overkill_rate'])}  (scored {img['scored']}, rejected {img['rejected']})",
        "  truth \\ verdict    OK     NG    REJ",
        f"  OK             {c['OK']['OK']:>6} {c['OK']['NG']:>6} {c['OK']['REJECTED']:>6}",
        f"  NG             {c['NG']['OK']:>6} {c['NG']['NG']:>6} {c['NG']['REJECTED']:>6}",
        *([f"wrong verdicts by part type: {format_errors_by_part(img['by_part'])}"] if img.get("by_part") else []),
        f"mask IoU on NG parts: mean {pix['mean_iou'] if pix['mean_iou'] is not None else 'n/a'} over "
        f"{pix['ng_parts']} "
        f"(with a mask: {pix['mean_iou_with_mask'] if pix['mean_iou_with_mask'] is not None else 'n/a'} over "
        f"{pix['with_mask']})",
        f"defect class right on {pct(s['accuracy']['class_agreement'])} of the rejected defective parts "
        f"('unknown' on {pct(s['accuracy']['class_unknown'])})",
        format_goals(s["quality"]),
    ]
    if s["explanations"]["enabled"]:
        e = s["explanations"]
        lines.append(f"explanations produced {e['produced']}, received {e['received']}")
        q = e.get("quality")
        if q:
            lines.append(
                f"  median {q['median_words']} words; consistent {pct(q['consistent'])}; class+location agree "
                f"{pct(q['class_location_agreement'])}; vs the true mask: shape {pct(q['shape_agreement'])}, "
                f"appearance {pct(q['appearance_agreement'])}"
            )
            lines.append(f"  explanation {format_goals(q['judged'])}")
        lines += [f"  {x['inspection_id']} (consistent: {x.get('consistent')}): {x['text']}" for x in e["examples"]]
    lines.append(
        f"overlays: {len(s['overlays'])} PNG in {Path(s['overlays'][0]).parent}"
        if s["overlays"]
        else "overlays: none (no NG verdict)"
    )
    return "\n".join(lines)
