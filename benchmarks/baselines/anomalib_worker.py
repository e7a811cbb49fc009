"""Runs INSIDE the anomalib side venv (.venv-anomalib): fit, export and time anomalib's
PatchCore the way a user of anomalib would, and print one JSON line.

    .venv-anomalib/bin/python benchmarks/baselines/anomalib_worker.py JOB.json

It imports nothing from this project (the side venv has torch 2.14.1 + anomalib, not the
project's packages): the contract is the job file written by anomalib_baseline.py and the
JSON printed as the LAST line of stdout:

    {"schema": "eiad-anomalib-worker/1", "model": "patchcore", "backbone": "resnet18",
     "pre_trained": false, "device": "cpu", "fit_s": 12.3, "train_images": 64,
     "versions": {"anomalib": "2.7.0", "torch": "2.14.1", ...},
     "runs": [{"path": "torch", "batch": 1, "samples_ns": [...], "wall_s": 5.0,
               "warmup": 10, "device": "cpu", "notes": [...]}, ...],
     "scores": {"torch": [one image score per evaluation image], "onnx": [...]},
     "maps": {"torch": "WORK/maps_torch.npy", ...},   # (N, H, W) float32 anomaly maps, one per image
     "notes": [...]}

Paths: "torch" = `engine.export(model, "torch")` loaded by `TorchInferencer`, timed on
`predict(batch)`; "onnx" = `engine.export(model, "onnx")` run by an ONNX Runtime session
(needs onnx, onnxscript and onnxruntime in the side venv; without them a note). Each timed
call includes uint8 BGR NHWC -> float RGB NCHW conversion, since our engine does that
inside its graph. Everything anomalib and Lightning print goes to stderr (fd 1 is
redirected while working) so stdout carries only the JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

WORKER_SCHEMA = "eiad-anomalib-worker/1"


def _log(message: str) -> None:
    sys.stderr.write(f"[anomalib-worker] {message}\n")
    sys.stderr.flush()


def _fit(job: dict, train_bgr, work: Path):
    """PatchCore on the OK images through anomalib's Folder datamodule and Engine."""
    import cv2
    from anomalib.data import Folder
    from anomalib.engine import Engine
    from anomalib.models import Patchcore

    good = work / "train" / "good"
    good.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(train_bgr):
        cv2.imwrite(str(good / f"{i:05d}.png"), image)
    size = (int(job["height"]), int(job["width"]))
    # pre_trained=False: the ImageNet weights cannot be downloaded here (offline).
    model = Patchcore(
        backbone=job["backbone"],
        layers=("layer2", "layer3"),
        pre_trained=False,
        coreset_sampling_ratio=float(job.get("coreset_sampling_ratio", 0.1)),
        pre_processor=Patchcore.configure_pre_processor(image_size=size),
        evaluator=False,
        visualizer=False,
    )
    datamodule = Folder(
        name="line",
        root=str(work / "train"),
        normal_dir="good",
        test_split_mode="none",
        val_split_mode="none",
        train_batch_size=8,
        eval_batch_size=8,
        num_workers=0,
    )
    datamodule.setup()
    engine = Engine(
        default_root_dir=str(work / "results"),
        logger=False,
        accelerator=job.get("device", "cpu"),
        devices=1,
        enable_progress_bar=False,
    )
    started = time.perf_counter()
    # Training loader only: OK images alone cannot calibrate a threshold, and anomalib's
    # Folder with val_split_mode="none" has no validation loader for Lightning to ask for.
    engine.fit(model=model, train_dataloaders=datamodule.train_dataloader())
    return engine, model, time.perf_counter() - started


def _time(fn, warmup: int, min_duration_s: float, min_iterations: int, sync) -> tuple[list[int], float]:
    """Same loop as benchmarks/timing.py: warm-up, then perf_counter_ns per call (device
    synced inside) until both the minimum duration and iteration count are reached."""
    for _ in range(warmup):
        fn()
        sync()
    samples = []
    clock = time.perf_counter_ns
    started = clock()
    deadline = started + int(min_duration_s * 1e9)
    while True:
        t0 = clock()
        fn()
        sync()
        t1 = clock()
        samples.append(t1 - t0)
        if len(samples) >= min_iterations and t1 >= deadline:
            break
    return samples, (clock() - started) / 1e9


def _batch(eval_bgr, batch: int):
    import numpy as np

    reps = -(-batch // len(eval_bgr))
    return np.ascontiguousarray(np.concatenate([eval_bgr] * reps)[:batch])


def _torch_path(engine, model, work: Path, device: str):
    import torch
    from anomalib.deploy import TorchInferencer

    pt = engine.export(model=model, export_type="torch", export_root=str(work / "export"))
    # TorchInferencer unpickles the export; it is the file this worker just wrote.
    os.environ["TRUST_REMOTE_CODE"] = "1"
    inferencer = TorchInferencer(path=pt, device=device)

    def predict(bgr):
        tensor = torch.from_numpy(bgr[..., ::-1].copy()).to(inferencer.device).permute(0, 3, 1, 2).float().div_(255.0)
        return inferencer.predict(tensor)

    def run(bgr):
        return predict(bgr).pred_score.detach().reshape(-1).cpu().numpy()

    def with_map(bgr):
        out = predict(bgr)
        return float(out.pred_score.reshape(-1)[0]), out.anomaly_map.detach().reshape(bgr.shape[1:3]).cpu().numpy()

    return run, with_map


def _onnx_path(engine, model, work: Path, size: tuple[int, int], device: str):
    """ONNX Runtime on anomalib's ONNX export; returns (run, provider, notes)."""
    import numpy as np
    import onnxruntime as ort

    path = engine.export(model=model, export_type="onnx", export_root=str(work / "export"), input_size=size)
    providers = (
        ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
    )
    session = ort.InferenceSession(str(path), providers=providers)
    spec = session.get_inputs()[0]
    outputs = [o.name for o in session.get_outputs()]
    score_index = outputs.index("pred_score") if "pred_score" in outputs else 0
    map_index = outputs.index("anomaly_map") if "anomaly_map" in outputs else None
    fixed = spec.shape[0] if isinstance(spec.shape[0], int) else None
    notes = []
    if fixed:
        # anomalib asks for a dynamic batch, but torch.export specialises PatchCore's graph
        # to its example batch: run it as shipped, padding/chunking to that batch.
        notes.append(
            f"anomalib's ONNX export came out with a fixed batch of {fixed} (input {spec.shape}): "
            f"smaller batches are padded to {fixed}, larger ones run in chunks of {fixed}"
        )

    def run(bgr):
        x = np.ascontiguousarray(bgr[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
        if not fixed or len(x) == fixed:
            return np.asarray(session.run(None, {spec.name: x})[score_index]).reshape(-1)
        scores = []
        for start in range(0, len(x), fixed):
            chunk = x[start : start + fixed]
            if len(chunk) < fixed:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], fixed - len(chunk), axis=0)])
            scores.append(np.asarray(session.run(None, {spec.name: chunk})[score_index]).reshape(-1))
        return np.concatenate(scores)[: len(x)]

    def with_map(bgr):
        x = np.ascontiguousarray(bgr[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
        if fixed and len(x) < fixed:
            x = np.concatenate([x, np.repeat(x[:1], fixed - len(x), axis=0)])
        values = session.run(None, {spec.name: x})
        amap = values[map_index][0].reshape(bgr.shape[1:3]) if map_index is not None else None
        return float(np.asarray(values[score_index]).reshape(-1)[0]), amap

    return run, with_map, session.get_providers()[0], notes


def _measure(
    job: dict, run, with_map, eval_bgr, name: str, device: str, sync
) -> tuple[list[dict], list[float], str | None]:
    """Scores and anomaly maps one image at a time (every evaluation image; maps saved to
    WORK/maps_<path>.npy for pixel AUROC), then the timed runs per batch."""
    import numpy as np

    pairs = [with_map(eval_bgr[i : i + 1]) for i in range(len(eval_bgr))]
    scores = [score for score, _ in pairs]
    maps_path = None
    if all(amap is not None for _, amap in pairs):
        maps_path = str(Path(job["work_dir"]) / f"maps_{name}.npy")
        np.save(maps_path, np.stack([np.asarray(amap, np.float32) for _, amap in pairs]))
    runs = []
    for batch in job["batches"]:
        stacked = _batch(eval_bgr, int(batch))
        notes = []
        try:
            samples, wall_s = _time(
                lambda: run(stacked), int(job["warmup"]), float(job["min_duration_s"]), int(job["min_iterations"]), sync
            )
        except Exception as error:  # noqa: BLE001 - a batch size the export cannot take is a note, not the end
            _log(f"{name} b{batch} failed: {error!r}")
            continue
        if name == "torch":
            notes.append("TorchInferencer.predict as shipped (no torch.inference_mode around it)")
        runs.append(
            {
                "path": name,
                "batch": int(batch),
                "samples_ns": samples,
                "wall_s": wall_s,
                "warmup": int(job["warmup"]),
                "device": device,
                "notes": notes,
            }
        )
    return runs, scores, maps_path


def work(job: dict) -> dict:
    import anomalib
    import numpy as np
    import torch

    work_dir = Path(job["work_dir"])
    train_bgr = np.load(job["train_images"])
    eval_bgr = np.load(job["eval_images"])
    device = job.get("device", "cpu")
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    engine, model, fit_s = _fit(job, train_bgr, work_dir)
    _log(f"fitted PatchCore on {len(train_bgr)} images in {fit_s:.1f} s")
    doc = {
        "schema": WORKER_SCHEMA,
        "model": "patchcore",
        "backbone": job["backbone"],
        "pre_trained": False,
        "device": device,
        "fit_s": fit_s,
        "train_images": int(len(train_bgr)),
        "runs": [],
        "scores": {},
        "maps": {},
        "notes": [],
        "versions": {"anomalib": anomalib.__version__, "torch": torch.__version__},
    }
    doc["notes"].append(
        f"anomalib PatchCore: {job['backbone']} backbone with RANDOM weights (pre_trained=False: no download "
        "offline), so its AUROC is far below a pretrained PatchCore's; its speed is representative"
    )
    if "torch" in job["paths"]:
        run, with_map = _torch_path(engine, model, work_dir, device)
        runs, doc["scores"]["torch"], doc["maps"]["torch"] = _measure(
            job, run, with_map, eval_bgr, "torch", device, sync
        )
        doc["runs"] += runs
    if "onnx" in job["paths"]:
        try:
            import onnxruntime

            doc["versions"]["onnxruntime"] = onnxruntime.__version__
            run, with_map, provider, notes = _onnx_path(
                engine, model, work_dir, (int(job["height"]), int(job["width"])), device
            )
            runs, scores, maps = _measure(job, run, with_map, eval_bgr, "onnx", provider, sync)
        except Exception as error:  # noqa: BLE001 - report why the ONNX path is missing, keep the torch figures
            doc["notes"].append(f"anomalib onnx path not measured: {type(error).__name__}: {str(error)[:300]}")
        else:
            doc["scores"]["onnx"] = scores
            doc["maps"]["onnx"] = maps
            doc["runs"] += runs
            doc["notes"] += [f"anomalib onnx: {note}" for note in notes]
    import resource

    doc["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return doc


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: anomalib_worker.py JOB.json\n")
        return 2
    job = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    os.environ.setdefault("TQDM_DISABLE", "1")  # anomalib's coreset progress bar: thousands of lines on stderr
    # Lightning and anomalib print to stdout; keep fd 1 for the JSON line only.
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        doc = work(job)
    finally:
        sys.stdout.flush()
        os.dup2(real_stdout, 1)
        sys.stdout = sys.__stdout__
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
