"""anomalib's own inference path, measured side by side with our engine in one run.

anomalib needs torchvision, i.e. torch 2.14.1 + torchvision 0.29.1, which cannot share
the project's venv (torch 2.13 is pinned there). It lives in a side venv:

    python3.11 -m venv .venv-anomalib
    .venv-anomalib/bin/pip install torch==2.14.1 torchvision==0.29.1 anomalib onnx onnxruntime

`eiad bench engine ... --baselines anomalib` writes the exact uint8 images the engine is
timed on (and the split's OK training images, at the same size) to .npy files, then runs
`anomalib_worker.py` with the side venv's python. The worker fits PatchCore the way a user
would (Folder datamodule -> Engine.fit), exports it with anomalib's own `engine.export`
(torch, and ONNX when onnx is installed there), times `TorchInferencer.predict` (and an
ONNX Runtime session on the export) per call with perf_counter_ns, and prints one JSON
line (WORKER_SCHEMA): raw latency samples and one image score per evaluation image.
This side turns the samples into the same summaries as the engine (benchmarks/stats.py)
and computes image AUROC from the scores and the split's labels.

Its pretrained backbones cannot be downloaded offline, so PatchCore runs on a
random-weight backbone (`pre_trained=False`): the speed is comparable, the accuracy is
not what a pretrained PatchCore reaches (the report says so).

A missing side venv or a failing worker is a note in the report, never a crash.
Not thread-safe: one worker at a time (it would compete for the same cores anyway).
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.stats import cdf_points, ratio, summarize_ns

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PYTHON = REPO_ROOT / ".venv-anomalib" / "bin" / "python"
WORKER = Path(__file__).resolve().with_name("anomalib_worker.py")
JOB_SCHEMA = "eiad-anomalib-job/1"
WORKER_SCHEMA = "eiad-anomalib-worker/1"
GROUP = "baseline-anomalib"
INSTALL_HINT = (
    "create .venv-anomalib with: python3.11 -m venv .venv-anomalib && .venv-anomalib/bin/pip install "
    "torch==2.14.1 torchvision==0.29.1 anomalib onnx onnxruntime (a separate venv: anomalib needs torchvision, "
    "which needs torch 2.14.1; the project pins 2.13)"
)


class BaselineUnavailable(Exception):
    """The anomalib baseline could not be measured; the message says why and what to do."""


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str


@dataclass(frozen=True)
class AnomalibJob:
    """What the worker is asked to do. Images are uint8 BGR NHWC .npy files at (height, width)."""

    train_images: str
    eval_images: str
    height: int
    width: int
    work_dir: str
    model: str = "patchcore"
    backbone: str = "resnet18"
    batches: list[int] = field(default_factory=lambda: [1])
    warmup: int = 10
    min_duration_s: float = 5.0
    min_iterations: int = 30
    paths: list[str] = field(default_factory=lambda: ["torch", "onnx"])
    device: str = "cpu"  # "cpu" or "cuda": where the worker runs anomalib
    coreset_sampling_ratio: float = 0.1  # anomalib's default; the memory bank size sets the kNN cost per image
    schema: str = JOB_SCHEMA


@dataclass(frozen=True)
class AnomalibOptions:
    """How `eiad bench engine --baselines anomalib` runs anomalib (CLI: --anomalib-*)."""

    python: Path | None = None  # the side venv's python; None: .venv-anomalib/bin/python in the repository
    train_images: int = 64  # OK training images PatchCore is fitted on (the first ones of the split)
    coreset_sampling_ratio: float = 0.1  # anomalib's default
    backbone: str = "resnet18"
    worker: Path = WORKER
    timeout_s: float = 1800.0


def availability(python: Path | None = None) -> Availability:
    """Whether the side venv's python is there (the worker reports anything deeper)."""
    python = Path(python) if python is not None else DEFAULT_PYTHON
    if not python.is_file():
        return Availability(False, f"anomalib not measured: {python} not found; {INSTALL_HINT}")
    return Availability(True, "")


def run_worker(job: AnomalibJob, python: Path | None = None, worker: Path = WORKER, timeout_s: float = 1800.0) -> dict:
    """Run the worker in its own interpreter and return its JSON (validated); raises
    BaselineUnavailable with the worker's last stderr lines when it fails."""
    python = Path(python) if python is not None else DEFAULT_PYTHON
    status = availability(python)
    if not status.available:
        raise BaselineUnavailable(status.reason)
    job_path = Path(job.work_dir) / "job.json"
    job_path.write_text(json.dumps(asdict(job), indent=1), encoding="utf-8")
    log.info("running the anomalib worker: %s %s %s", python, worker, job_path)
    try:
        done = subprocess.run(
            [str(python), str(worker), str(job_path)], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise BaselineUnavailable(f"anomalib not measured: the worker ran past {timeout_s:g} s") from None
    except OSError as error:
        raise BaselineUnavailable(f"anomalib not measured: cannot start {python} ({error}); {INSTALL_HINT}") from None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-5:])
        raise BaselineUnavailable(f"anomalib not measured: the worker exited with {done.returncode}: {tail}")
    return parse_worker_output(done.stdout)


def parse_worker_output(stdout: str) -> dict:
    """The last non-empty stdout line as the worker's JSON, checked against WORKER_SCHEMA."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise BaselineUnavailable(
            "anomalib not measured: the worker printed nothing on stdout (expected one JSON line)"
        )
    try:
        doc = json.loads(lines[-1])
    except json.JSONDecodeError as error:
        raise BaselineUnavailable(
            f"anomalib not measured: the worker's last stdout line is not JSON ({error}): {lines[-1][:200]!r}"
        ) from None
    if not isinstance(doc, dict) or doc.get("schema") != WORKER_SCHEMA:
        raise BaselineUnavailable(f"anomalib not measured: the worker's JSON lacks schema {WORKER_SCHEMA!r}")
    for key in ("runs", "scores", "versions"):
        if key not in doc:
            raise BaselineUnavailable(f"anomalib not measured: the worker's JSON lacks {key!r}")
    return doc


def image_auroc(scores, labels: list[str]) -> float:
    """Image AUROC (NG = positive) by the rank-sum (Mann-Whitney) formula, ties counted
    half; nan unless both OK and NG images are present or any score is not finite."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray([label == "NG" for label in labels])
    if len(scores) != len(positive) or positive.all() or not positive.any() or not np.all(np.isfinite(scores)):
        return float("nan")
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def pixel_auroc(maps: np.ndarray | None, masks: np.ndarray | None) -> float:
    """Pixel AUROC of anomaly maps (N, H, W) against boolean masks (N, H, W), the same
    rank-sum formula as image_auroc; nan without maps, masks or defect pixels."""
    if maps is None or masks is None or maps.shape != masks.shape or not masks.any() or masks.all():
        return float("nan")
    from scipy.stats import rankdata

    truth = masks.ravel().astype(bool)
    ranks = rankdata(np.asarray(maps, np.float64).ravel())
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def configurations(doc: dict, labels: list[str], pixel: dict[str, float] | None = None) -> list[dict]:
    """One bench configuration (group GROUP) per timed path x batch in the worker's JSON;
    `pixel`: path -> pixel AUROC of its maps."""
    model = doc.get("model", "patchcore")
    backbone = f"{doc.get('backbone', '?')} ({'pretrained' if doc.get('pre_trained') else 'random weights'})"
    configs = []
    for run in doc["runs"]:
        samples = np.asarray(run["samples_ns"], dtype=np.int64)
        batch = int(run["batch"])
        scores = doc["scores"].get(run["path"], [])
        configs.append(
            {
                "name": f"anomalib {model} {run['path']} b{batch}",
                "group": GROUP,
                "series": f"anomalib-{run['path']}",
                "backend": f"anomalib {run['path']}",
                "device": run.get("device", doc.get("device", "cpu")),
                "batch": batch,
                "latency_ms": summarize_ns(samples).to_dict(),
                "cdf_ms": cdf_points(samples / 1e6),
                "throughput_per_s": len(samples) * batch / run["wall_s"] if run["wall_s"] > 0 else float("nan"),
                "iterations": int(samples.size),
                "wall_s": run["wall_s"],
                "warmup": run.get("warmup"),
                "accuracy": {
                    "image_auroc": image_auroc(scores, labels),
                    "images": len(scores),
                    "backbone": backbone,
                    "ng_images": sum(label == "NG" for label in labels),
                    "pixel_auroc": (pixel or {}).get(run["path"], float("nan")),
                },
                "notes": list(run.get("notes", [])),
            }
        )
    return configs


def comparisons(
    engine_configs: list[dict],
    anomalib_configs: list[dict],
    engine_auroc: float | None,
    engine_name: str = "our engine",
    engine_pixel_auroc: float | None = None,
) -> list[dict]:
    """Engine vs anomalib at the same batch: throughput ratio (> 1: ours does more per
    second), p99 ratio (> 1: anomalib is slower), and the image and pixel AUROC of each."""
    rows = []
    for theirs in anomalib_configs:
        for ours in (c for c in engine_configs if c.get("batch") == theirs["batch"]):
            rows.append(
                {
                    "name": f"{ours['name']} / {theirs['name']}",
                    "metric": "throughput ratio",
                    "ratio": ratio(ours["throughput_per_s"], theirs["throughput_per_s"]),
                    "goal": "-",
                }
            )
            rows.append(
                {
                    "name": f"{theirs['name']} p99 / {ours['name']} p99",
                    "metric": "latency ratio",
                    "ratio": ratio(theirs["latency_ms"]["p99_ms"], ours["latency_ms"]["p99_ms"]),
                    "goal": "-",
                }
            )
    seen = set()
    for theirs in anomalib_configs:
        series = theirs["series"]
        if series not in seen:
            seen.add(series)
            rows.append(
                {
                    "name": f"image AUROC: {theirs['backend']} ({theirs['accuracy']['backbone']})",
                    "metric": "AUROC",
                    "ratio": theirs["accuracy"]["image_auroc"],
                    "goal": "-",
                }
            )
            if np.isfinite(theirs["accuracy"].get("pixel_auroc", float("nan"))):
                rows.append(
                    {
                        "name": f"pixel AUROC: {theirs['backend']} ({theirs['accuracy']['backbone']})",
                        "metric": "AUROC",
                        "ratio": theirs["accuracy"]["pixel_auroc"],
                        "goal": "-",
                    }
                )
    if engine_auroc is not None:
        rows.append({"name": f"image AUROC: {engine_name}", "metric": "AUROC", "ratio": engine_auroc, "goal": "-"})
    if engine_pixel_auroc is not None and np.isfinite(engine_pixel_auroc):
        rows.append(
            {"name": f"pixel AUROC: {engine_name}", "metric": "AUROC", "ratio": engine_pixel_auroc, "goal": "-"}
        )
    return rows


def measure(
    train_images: np.ndarray,
    eval_images: np.ndarray,
    labels: list[str],
    *,
    batches: list[int],
    warmup: int,
    min_duration_s: float,
    options: AnomalibOptions = AnomalibOptions(),
    masks: np.ndarray | None = None,
) -> tuple[list[dict], list[str]]:
    """Fit, export and time anomalib PatchCore in the side venv on these exact images;
    returns its bench configurations and the worker's notes (with `masks`, (N, H, W) bool
    for the evaluation images, the pixel AUROC of its maps too). Raises BaselineUnavailable
    (the caller turns it into a note, not a crash)."""
    if len(train_images) == 0:
        raise BaselineUnavailable("anomalib not measured: the split has no OK training images to fit PatchCore on")
    with tempfile.TemporaryDirectory(prefix="eiad-anomalib-") as tmp:
        np.save(Path(tmp) / "train.npy", train_images)
        np.save(Path(tmp) / "eval.npy", eval_images)
        job = AnomalibJob(
            train_images=str(Path(tmp) / "train.npy"),
            eval_images=str(Path(tmp) / "eval.npy"),
            height=int(eval_images.shape[1]),
            width=int(eval_images.shape[2]),
            work_dir=tmp,
            backbone=options.backbone,
            batches=list(batches),
            warmup=warmup,
            min_duration_s=min_duration_s,
            coreset_sampling_ratio=options.coreset_sampling_ratio,
        )
        doc = run_worker(job, options.python, options.worker, options.timeout_s)
        pixel = {
            path: pixel_auroc(np.load(maps) if maps else None, masks) for path, maps in doc.get("maps", {}).items()
        }
    configs = configurations(doc, labels, pixel)
    for config in configs:
        config["versions"] = doc["versions"]
        config["fit_s"] = doc.get("fit_s")
        config["peak_rss_mb"] = doc.get("peak_rss_mb")
    if not configs:
        raise BaselineUnavailable("anomalib not measured: the worker timed nothing; " + "; ".join(doc.get("notes", [])))
    return configs, list(doc.get("notes", []))
