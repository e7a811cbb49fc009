"""python -m benchmarks.model_memory [--out DIR]: count, estimate, write result.json and report.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.model_memory.checkpoints import llava_interleave, minicpmv26, minicpmv46
from benchmarks.model_memory.estimate import memory, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Parameters and memory (training and edge) of the supported real checkpoints, counted from "
        "their architectures built on the meta device (no download). Writes result.json and report.md."
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/model_memory"))
    args = parser.parse_args(argv)
    results = [memory(*build()) for build in (minicpmv46, llava_interleave, minicpmv26)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (args.out / "report.md").write_text(report(results), encoding="utf-8")
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
