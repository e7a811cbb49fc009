"""Regenerate benchmarks/RESULTS.md and the plots beside it in one command:

    python -m benchmarks.regenerate [--artifact DIR] [--quick]     (make bench)

Without --artifact it builds the torch-free tiny artifact of the edge tests (a 224x224
ONNX graph, tests/support_edge/tiny_artifact.py) so the figures measure the loop and its
overheads, not a real model; pass a real export artifact for model figures. Runs
`eiad bench engine`, `eiad bench line` and `eiad bench sweep` through the CLI, with the
exact commands recorded in RESULTS.md next to the machine description.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = Path(os.path.relpath(HERE / "results"))  # relative: the commands in RESULTS.md work from the repo root


def _station(directory: Path, artifact: Path) -> Path:
    path = directory / "station.yaml"
    path.write_text(f"station_id: bench\nline_id: line-1\nartifact: {os.path.relpath(artifact, directory)}\n"
                    "sources:\n  - {kind: folder, id: cam0, path: frames}\n"
                    "batching: {max_batch: 1, max_wait_ms: 0}\nmetrics: {enabled: false}\nmqtt: {host: 127.0.0.1, port: 1883}\n")
    return path


def main(argv: list[str] | None = None) -> int:
    from eiad.cli import main as eiad

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, help="export artifact (default: build the tiny 224x224 test graph)")
    parser.add_argument("--quick", action="store_true", help="short runs (CI smoke; figures noisier)")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    artifact = args.artifact
    if artifact is None:
        from tests.support_edge.tiny_artifact import build_tiny_artifact

        artifact = build_tiny_artifact(RESULTS / "tiny_artifact_224", height=224, width=224)
    station = _station(RESULTS, artifact)
    d = 2 if args.quick else 10
    commands = {
        "engine": ["bench", "engine", str(artifact), "--batch", "1,8", "--min-duration-s", str(d / 2), "--out", str(RESULTS / "engine")],
        "line": ["bench", "line", "--config", str(station), "--fps", "30", "--cameras", "4", "--budget-ms", "15",
                 "--duration-s", str(d), "--out", str(RESULTS / "line")],
        "sweep": ["bench", "sweep", "--config", str(station), "--cameras", "1,2,4", "--fps-max", "240", "--probe-s", str(d / 5),
                  "--steps", "4", "--budget-ms", "15", "--out", str(RESULTS / "sweep")],
    }
    sections = []
    for name, command in commands.items():
        saved, sys.argv = sys.argv, ["eiad", *command]  # the report records sys.argv as the command
        try:
            code = eiad(command)
        finally:
            sys.argv = saved
        if code != 0:
            print(f"eiad {' '.join(command)} failed with {code}", file=sys.stderr)
            return code
        report = (RESULTS / name / "report.md").read_text(encoding="utf-8")
        report = report.replace("](", f"](results/{name}/").replace("# eiad bench", "## eiad bench", 1)
        sections.append(report.split("\n", 1)[1].replace("\n## ", "\n### "))
    env = json.loads((RESULTS / "engine" / "result.json").read_text())["environment"]
    head = ["# Benchmark results", "", "Regenerate: `make bench` (= `python -m benchmarks.regenerate`). Figures below were measured,",
            f"not typed: machine `{env['cpu']}`, {env.get('cpu_affinity')} usable cores, load average {env.get('load_avg_1m')} at the start",
            "(this development machine is shared by several engineers: tails are noisy; rerun on an idle box for decisions).",
            f"Artifact: `{artifact}`.", ""]
    (HERE / "RESULTS.md").write_text("\n".join(head) + "\n" + "\n\n".join(f"## {n}\n\n{s}" for n, s in zip(commands, sections)), encoding="utf-8")
    print(f"written {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
