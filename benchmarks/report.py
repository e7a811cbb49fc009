"""Benchmark results: the machine they came from, JSON, a Markdown report and PNG plots.

One result document (a dict, JSON-ready) per run:

    {"schema": "eiad-bench/1", "kind": "engine"|"line"|"sweep", "command": "...",
     "created_at": ISO, "environment": {machine, cpu, gpu, memory, versions},
     "settings": {...}, "configurations": [{"name", "group", "latency_ms": {summary},
     "cdf_ms": [[q, ms]...], "throughput_per_s", "stages_ms": {stage: {p50_ms, p99_ms}},
     "cameras", "accuracy", "budget", "notes"}...], "comparisons": [...], "notes": [...]}

`write_report(result, out_dir)` writes result.json, report.md and the plots that have data
(latency_cdf.png, stages.png, throughput_vs_cameras.png). Plots use matplotlib's Agg
backend (no display). Not thread-safe (matplotlib's pyplot state).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = "eiad-bench/1"
_PACKAGES = (
    "eiad-edge",
    "numpy",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "torch",
    "opencv-python-headless",
    "paho-mqtt",
    "tensorrt",
    "anomalib",
)


def new_result(kind: str, settings: dict, command: str | None = None) -> dict:
    return {
        "schema": SCHEMA,
        "kind": kind,
        "command": command if command is not None else " ".join(["eiad", *sys.argv[1:]]),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),
        "settings": settings,
        "configurations": [],
        "comparisons": [],
        "notes": [],
    }


def environment() -> dict:
    """Machine, CPU, memory, GPU and package versions: what a reader needs to trust a figure."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    versions["python"] = platform.python_version()
    mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if mosquitto:
        versions["mosquitto"] = _first_line([mosquitto, "-h"], "mosquitto version")
    return {
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": _memory_gb(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "gpu": _gpus(),
        "versions": versions,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    text = _first_line(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"], "", all_lines=True
    )
    return [line.strip() for line in text.splitlines() if line.strip()]


def _first_line(cmd: list[str], contains: str, all_lines: bool = False) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = done.stdout + done.stderr
    if all_lines:
        return done.stdout
    return next((line.strip() for line in text.splitlines() if contains in line), "")


def write_json(result: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    return path


def load_result(path: Path) -> dict:
    from eiad.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: pass a result.json written by 'eiad bench engine|line|sweep --out DIR'")
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(result, dict) or result.get("schema") != SCHEMA:
        raise DataError(f"{path} is not an eiad bench result (schema {SCHEMA!r} expected)")
    return result


def write_report(result: dict, out_dir: Path) -> dict[str, Path]:
    """result.json + report.md + the plots that have data; returns {name: path}."""
    from benchmarks.markdown import render_markdown
    from benchmarks.plots import write_plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"json": write_json(result, out_dir / "result.json")}
    written.update(write_plots(result, out_dir))
    md = out_dir / "report.md"
    md.write_text(
        render_markdown(result, {k: p.name for k, p in written.items() if p.suffix == ".png"}), encoding="utf-8"
    )
    written["markdown"] = md
    log.info("report written to %s", out_dir)
    return written
