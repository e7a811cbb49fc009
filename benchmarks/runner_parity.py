"""The station's configured runner against ONNX Runtime on the CPU, on the station's own frames.

Use it when a station moves to another runner (torch on a CUDA GPU, TensorRT): it loads the
runner exactly as the station would (station.yaml's `runner:`), runs the first 120 frames of
the config's video source through it and through the artifact's ONNX graph on the CPU, and
prints the largest difference per output and how many verdicts agree. It then times the
runner alone at batch 1, 4 and 8 (300 calls each after 20 warm-up calls, copies in and out
included).

    python -m benchmarks.runner_parity --config station.yaml
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.line_load import load_frames
from edge.config import load_station_config
from edge.runners.factory import build_runner
from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
from edge.verdict import ThresholdOverrides, decide_outputs
from eiad.manifest import load_manifest

FRAMES = 120
TIMED_CALLS = 300


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runner_parity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="station.yaml whose runner is compared")
    args = parser.parse_args(argv)
    config = load_station_config(args.config)
    artifact = config.path(config.artifact)
    manifest = load_manifest(artifact)
    frames, _ = load_frames(config, manifest, None)
    frames = np.stack(frames[:FRAMES])
    runner = build_runner(config.runner, artifact, manifest, config.path)
    reference = OnnxRuntimeRunner(artifact, providers=["CPUExecutionProvider"], manifest=manifest)
    print("provider", runner.provider)
    worst: dict[str, float] = {}
    agree = 0
    for start in range(0, len(frames), 8):
        got, want = runner.run(frames[start : start + 8]), reference.run(frames[start : start + 8])
        for name in got:
            worst[name] = max(worst.get(name, 0.0), float(np.abs(got[name] - want[name]).max()))
        for i in range(len(got["image_score"])):
            a = decide_outputs({k: v[i] for k, v in got.items()}, manifest, ThresholdOverrides())
            b = decide_outputs({k: v[i] for k, v in want.items()}, manifest, ThresholdOverrides())
            agree += a.verdict == b.verdict
    print("max abs diff vs ORT CPU", worst)
    print(f"verdict agreement {agree}/{len(frames)}")
    for batch in (1, 4, 8):
        images = frames[:batch]
        for _ in range(20):
            runner.run(images)
        times = []
        for _ in range(TIMED_CALLS):
            started = time.perf_counter()
            runner.run(images)
            times.append((time.perf_counter() - started) * 1000)
        print(f"runner b{batch}: p50 {np.percentile(times, 50):.3f} ms p99 {np.percentile(times, 99):.3f} ms")
    runner.close()
    reference.close()
    return 0 if agree == len(frames) else 1


if __name__ == "__main__":
    sys.exit(main())
