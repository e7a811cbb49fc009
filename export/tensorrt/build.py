"""Build a TensorRT 10 engine from the artifact's vision.onnx (run on the edge box).

TensorRT 10 name-based API only: builder.create_network(0) (explicit batch is
the only mode), trt.OnnxParser logging every parser error, set_memory_pool_limit(
WORKSPACE), an optimisation profile for the batch axis, a timing cache created from /
persisted to tensorrt/timing.cache, build_serialized_network. FP16 through the builder
flag; INT8 through an entropy calibrator on a folder of line images (TensorRT 10).
TensorRT 11 drops both flags: precision must come from the ONNX. An artifact made by
`eiad export quantize` carries it (fp16 graph, or symmetric Q/DQ int8): its engine is
built from that graph, with the matching flag where the builder still has it (TensorRT
10: INT8 without a calibrator, the Q/DQ scales rule) and none on TensorRT 11. That path
is untested here (no TensorRT on the development machine): only the refusal of an
asymmetric (uint8 zero point) Q/DQ graph, which TensorRT cannot take, is tested. Engines
run only with the TensorRT version and GPU that built them,
so the file name is a key over all of those. Needs a CUDA GPU and torch (device buffers
for calibration); where `tensorrt` is missing, formats.py stops with a clear message.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path

from eiad.errors import ArtifactError
from eiad.manifest import load_manifest

log = logging.getLogger(__name__)

TRT_DIR = "tensorrt"
TIMING_CACHE = "timing.cache"


def engine_key(
    onnx_sha256: str,
    trt_version: str,
    gpu_name: str,
    capability: tuple[int, int],
    precision: str,
    profile: tuple[int, int, int],
) -> str:
    """Deterministic engine file stem: ONNX hash + TensorRT version + GPU + precision + batch profile."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower()
    raw = f"{onnx_sha256}|{trt_version}|{gpu}|sm{capability[0]}{capability[1]}|{precision}|{profile}"
    digest = hashlib.sha256(raw.encode()).hexdigest()[:12]
    batches = f"b{profile[0]}-{profile[1]}-{profile[2]}"
    return f"vision_{precision}_trt{trt_version}_{gpu}_sm{capability[0]}{capability[1]}_{batches}_{digest}"


def _logger(trt):
    """Bridge TensorRT's log into ours."""

    class _Bridge(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            level = {
                trt.ILogger.INTERNAL_ERROR: logging.ERROR,
                trt.ILogger.ERROR: logging.ERROR,
                trt.ILogger.WARNING: logging.WARNING,
                trt.ILogger.INFO: logging.DEBUG,
            }.get(severity, logging.DEBUG)
            logging.getLogger("tensorrt").log(level, msg)

    return _Bridge()


def _progress_monitor(trt):
    """An IProgressMonitor (TensorRT >= 10.0) that logs each build phase, or None if absent."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class _Progress(base):
        def __init__(self):
            base.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            log.info("TensorRT build: %s (%d steps)", phase_name, num_steps)

        def step_complete(self, phase_name, step):
            log.debug("TensorRT build: %s step %d", phase_name, step)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            log.debug("TensorRT build: %s done", phase_name)

    return _Progress()


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    timing_cache: Path,
    precision: str,
    input_name: str,
    shape_hw: tuple[int, int],
    profile: tuple[int, int, int],
    workspace_mib: int,
    calibrator=None,
    graph_precision: bool = False,
) -> Path:
    """Parse, configure and build; the serialized engine is written to `engine_path`."""
    import tensorrt as trt

    logger = _logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        for error in errors:
            log.error("TensorRT ONNX parser: %s", error)
        raise ArtifactError(f"TensorRT cannot parse {onnx_path}: " + " | ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    height, width = shape_hw
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(input_name, *[(b, height, width, 3) for b in profile])
    config.add_optimization_profile(opt_profile)
    if graph_precision:
        # Precision is in the graph (fp16 weights or Q/DQ scales); TensorRT 11 has no flags to set.
        for flag in ("FP16",) if precision == "fp16" else ("INT8", "FP16"):
            if hasattr(trt.BuilderFlag, flag):
                config.set_flag(getattr(trt.BuilderFlag, flag))
    elif precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        if calibrator is None:
            raise ArtifactError("INT8 needs calibration images: pass --calib-dir with line images")
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)  # layers INT8 cannot take fall back to FP16, not FP32
        config.int8_calibrator = calibrator
        config.set_calibration_profile(opt_profile)
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    log.warning(
        "building the TensorRT engine: this can take several minutes (about 10 on a Jetson Orin) the first time"
    )
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ArtifactError(f"TensorRT failed to build an engine from {onnx_path}; see the TensorRT errors above")
    engine_path.write_bytes(bytes(serialized))
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    log.info("engine built in %.0f s: %s", time.perf_counter() - started, engine_path.name)
    return engine_path


def build_engine_for_artifact(
    artifact: Path, precision: str, calib_dir: Path | None, max_batch: int, workspace_mib: int
) -> Path:
    """Build (or reuse) the keyed engine for this GPU, check parity with ONNX Runtime, add it to the manifest."""
    import tensorrt as trt
    import torch

    from export.artifact import add_files, inside
    from export.tensorrt.parity import check_trt_parity, int8_calibrator

    if not torch.cuda.is_available():
        raise ArtifactError("no CUDA GPU is visible: TensorRT engines are built on the GPU that will run them")
    artifact = Path(artifact).resolve()
    manifest = load_manifest(artifact, verify_files=True)
    onnx_rel = next((k for k, e in manifest.files.items() if e.role == "vision_onnx"), None)
    if onnx_rel is None:
        raise ArtifactError(f"{artifact}/manifest.json lists no vision_onnx: run 'eiad export onnx' first")
    graph_precision = check_graph_precision(artifact / onnx_rel, manifest.precision, precision)
    profile = (1, max(1, max_batch // 2), max_batch)
    major, minor = torch.cuda.get_device_capability()
    key = engine_key(
        manifest.files[onnx_rel].sha256,
        trt.__version__,
        torch.cuda.get_device_name(),
        (major, minor),
        precision,
        profile,
    )
    engine_path = inside(artifact, f"{TRT_DIR}/{key}.engine")
    engine_path.parent.mkdir(exist_ok=True)
    shape = (manifest.input.height, manifest.input.width)
    if engine_path.is_file():
        log.info("engine %s already built for this ONNX, TensorRT and GPU: reusing it", engine_path.name)
    else:
        calib = precision == "int8" and not graph_precision
        calibrator = int8_calibrator(trt, calib_dir, shape, engine_path.with_suffix(".calib")) if calib else None
        build_engine(
            artifact / onnx_rel,
            engine_path,
            inside(artifact, f"{TRT_DIR}/{TIMING_CACHE}"),
            precision,
            manifest.input.name,
            shape,
            profile,
            workspace_mib,
            calibrator,
            graph_precision,
        )
    check_trt_parity(engine_path, artifact / onnx_rel, manifest, precision, calib_dir)
    # The timing cache is not listed: it is a build-time helper rewritten by every build.
    add_files(artifact, {f"{TRT_DIR}/{engine_path.name}": f"tensorrt_engine_{precision}"})
    return engine_path


def check_graph_precision(onnx_path: Path, artifact_precision: str, requested: str) -> bool:
    """True when the artifact's graph carries its precision ('eiad export quantize'); raises
    if the request contradicts it or the Q/DQ graph is asymmetric (TensorRT needs zero point 0)."""
    if artifact_precision == "fp32":
        return False
    if requested != artifact_precision:
        raise ArtifactError(
            f"{onnx_path.parent} is a {artifact_precision} artifact: build it with --precision "
            f"{artifact_precision}, or build {requested} from the fp32 artifact"
        )
    if artifact_precision == "int8":
        from export.vision.quantize_graph import asymmetric_quantization

        if asymmetric_quantization(onnx_path):
            raise ArtifactError(
                f"{onnx_path} has uint8 (asymmetric) Q/DQ, which TensorRT cannot build: re-quantize "
                "with 'eiad export quantize --precision int8 --symmetric'"
            )
    return True
