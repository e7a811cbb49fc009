"""The edge package imports and runs with torch and transformers absent (an edge box)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    for name in ("torch", "transformers", "torchvision", "peft", "accelerate"):
        sys.modules[name] = None  # any import of these now raises ImportError
    import importlib, pkgutil, threading, edge
    failed = []
    for info in pkgutil.walk_packages(edge.__path__, "edge."):
        try:
            importlib.import_module(info.name)
        except ImportError as error:
            if "harvesters" not in str(error) and "tensorrt" not in str(error):
                failed.append(f"{info.name}: {error}")
    if failed:
        raise SystemExit("imports failed without torch:\\n" + "\\n".join(failed))
    from edge.pipeline import Pipeline
    from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
    from edge.sources.watchdog import SourceSet
    from edge.sources.synthetic import SyntheticLineSource
    from tests.support_edge.fakes import CollectingSink
    from benchmarks.stand_ins.frames import write_synthetic_line
    from pathlib import Path
    artifact, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    video, truths = write_synthetic_line(workdir / "line", count=6)
    sources = SourceSet()
    sources.add("line", lambda: SyntheticLineSource("line", video))
    sink = CollectingSink()
    Pipeline("st", sources, OnnxRuntimeRunner(artifact), {"c": sink}).run(threading.Event())
    got = [r.verdict for r in sink.results]
    want = [t["label"] for t in truths]
    assert got == want, (got, want)
    assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
    print("EDGE-OK", len(got))
    """
)


def test_edge_imports_and_runs_without_torch(tiny_artifact, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_artifact), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "EDGE-OK 6" in done.stdout


def test_eiad_edge_help_works_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; from commands.main import main; "
        "main(['edge', 'run', '--help'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0 and "--config" in done.stdout, done.stderr[-2000:]
