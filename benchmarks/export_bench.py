"""Export benchmark: vision engine latency (PyTorch eager vs ONNX Runtime CPU, batch 1 and 8,
p50/p99) and LLM tokens/s + size for fp32 / int8 / int4, side by side in one run.

    python -m benchmarks.export_bench --artifact ART --checkpoint CKPT [--out bench.json]

On a CUDA machine it adds PyTorch eager vs torch.compile (CUDA graphs) GPU timings, with
ONNX Runtime CPU kept as the reference. Honest timing: warm-up, perf_counter_ns, device
sync, percentiles, versions recorded.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from eiad.manifest import LLM_DECODER, has_llm, llm_dir, read_llm_config


def _percentiles(fn, warmup: int, iters: int, sync=lambda: None) -> dict:
    for _ in range(warmup):  # first runs allocate buffers and pick kernels: not what the line sees
        fn()
    sync()
    samples = []
    for _ in range(iters):
        start = time.perf_counter_ns()
        fn()
        sync()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return {"p50_ms": float(np.percentile(samples, 50)), "p99_ms": float(np.percentile(samples, 99)), "n": iters}


def vision_rows(artifact: Path, engine, iters: int) -> list[dict]:
    import onnxruntime as ort
    import torch

    from eiad.manifest import load_manifest

    manifest = load_manifest(artifact)
    session = ort.InferenceSession(str(artifact / "vision.onnx"), providers=["CPUExecutionProvider"])
    rows = []
    for batch in (1, 8):
        images = np.random.default_rng(0).integers(
            0, 256, (batch, manifest.input.height, manifest.input.width, 3), np.uint8
        )
        tensor = torch.from_numpy(images)
        with torch.no_grad():
            rows.append({"engine": "torch eager CPU", "batch": batch, **_percentiles(lambda: engine(tensor), 3, iters)})
        rows.append(
            {
                "engine": "onnxruntime CPU",
                "batch": batch,
                **_percentiles(lambda: session.run(None, {"image": images}), 3, iters),
            }
        )
        if torch.cuda.is_available():
            gpu = engine.cuda()
            on_gpu = tensor.cuda()
            sync = torch.cuda.synchronize
            with torch.no_grad():
                rows.append(
                    {"engine": "torch eager CUDA", "batch": batch, **_percentiles(lambda: gpu(on_gpu), 5, iters, sync)}
                )
                compiled = torch.compile(gpu, mode="reduce-overhead")  # CUDA graphs
                rows.append(
                    {
                        "engine": "torch.compile CUDA graphs",
                        "batch": batch,
                        **_percentiles(lambda: compiled(on_gpu), 5, iters, sync),
                    }
                )
            engine.cpu()
    return rows


def _grounded_example() -> str:
    """The explainer's grounded question about a thin dark scratch near the top-left edge."""
    from eiad.description.facts import measure_defect
    from eiad.grounding import grounded_prompt

    mask = np.zeros((224, 224), bool)
    mask[8:11, 20:90] = True
    return grounded_prompt("NG", "scratch", 0.93, measure_defect(mask, np.where(mask, 40, 150).astype(np.uint8)))


def llm_rows(artifact: Path, tokens: int) -> list[dict]:
    from edge.explainer.runtime import LlmRuntime

    folder = llm_dir(artifact)
    config = read_llm_config(artifact)
    rows = []
    for precision in config["precisions"]:
        runtime = LlmRuntime(folder, precision)
        ids = runtime.encode(_grounded_example())  # the explainer's real question, so prefill is real
        runtime.generate_ids(ids, 4)  # warm-up
        runtime.eos = set()  # time a fixed number of tokens
        generation = runtime.generate_ids(ids, tokens)
        size = sum(p.stat().st_size for p in folder.glob(LLM_DECODER.format(precision=precision) + "*"))
        rows.append(
            {
                "precision": precision,
                "size_mb": size / 1e6,
                "tokens_per_s": generation.tokens_per_s,
                "prompt_tokens": len(ids),
                "prefill_ms": round(generation.prefill_s * 1000, 2),  # the prompt, before the first new token
                "tokens": len(generation.token_ids),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, help="the checkpoint the artifact came from (for PyTorch timings)")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("export_bench.json"))
    args = parser.parse_args(argv)
    import onnxruntime
    import torch

    result = {
        "device": platform.processor() or platform.machine(),
        "cuda": torch.cuda.is_available(),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "vision": [],
        "llm": [],
    }
    if args.checkpoint:
        from eiad.modeling.checkpoint import engine_from_checkpoint

        engine, _ = engine_from_checkpoint(args.checkpoint)
        result["vision"] = vision_rows(args.artifact, engine, args.iters)
    if has_llm(args.artifact):
        result["llm"] = llm_rows(args.artifact, args.tokens)
    print(f"{'vision engine':<28}{'batch':>6}{'p50 ms':>10}{'p99 ms':>10}")
    for row in result["vision"]:
        print(f"{row['engine']:<28}{row['batch']:>6}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}")
    print(f"{'LLM decoder':<28}{'MB':>8}{'tokens/s':>10}")
    for row in result["llm"]:
        print(f"{row['precision']:<28}{row['size_mb']:>8.2f}{row['tokens_per_s']:>10.1f}")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
