"""Export the vision engine (uint8 NHWC camera pixels -> named outputs) to ONNX.

The engine module (eiad/modeling/engine.py) already holds the preprocessing: it takes
uint8 BGR NHWC at the artifact's fixed size and normalises inside the graph, so the
edge never redoes it. This module traces it with the dynamo exporter, checks the graph
and proves the batch axis is really dynamic (a batch-1 example can fix it).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from eiad.errors import ArtifactError
from eiad.manifest import ANOMALY_MAP, CLASS_PROBS, IMAGE_SCORE, VISION_FEATURES

log = logging.getLogger(__name__)

OUTPUT_NAMES = (ANOMALY_MAP, IMAGE_SCORE, CLASS_PROBS, VISION_FEATURES)
INPUT_NAME = "image"
EXTERNAL_DATA_BYTES = int(1.5e9)  # above this, weights go to a .data file (protobuf caps at 2 GB)
EXAMPLE_BATCH = 2  # >= 2 so the exporter cannot specialise the batch axis to 1
MAX_BATCH = 64


def _wrapped(engine):
    """A module returning the engine's outputs as a plain tuple in OUTPUT_NAMES order."""
    import torch

    class _TupleOut(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, image):
            out = self.inner(image)
            return tuple(getattr(out, name) for name in OUTPUT_NAMES)

    return _TupleOut(engine).eval()


def parameter_bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters()) + sum(
        b.numel() * b.element_size() for b in module.buffers()
    )


def export_vision_onnx(
    engine, height: int, width: int, onnx_path: Path, opset: int = 18, external_data: bool | None = None
) -> Path:
    """Trace `engine` to `onnx_path` with a dynamic batch axis; returns the path.

    `external_data`: None decides by weight size (> 1.5 GB -> external). Raises
    ArtifactError if the exporter fails or the checker rejects the graph.
    """
    import torch

    if opset < 17:
        raise ArtifactError(f"--opset {opset} is too old: use 17 or newer (LayerNorm and attention ops need it)")
    module = _wrapped(engine)
    if external_data is None:
        external_data = parameter_bytes(module) > EXTERNAL_DATA_BYTES
    generator = torch.Generator().manual_seed(0)
    example = torch.randint(0, 256, (EXAMPLE_BATCH, height, width, 3), dtype=torch.uint8, generator=generator)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    onnx_path = Path(onnx_path)
    started = time.perf_counter()
    log.info("exporting the vision engine to %s (opset %d, %dx%d, dynamic batch)", onnx_path.name, opset, height, width)
    try:
        with torch.no_grad():
            torch.onnx.export(
                module,
                (example,),
                str(onnx_path),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={"image": {0: batch}},
                external_data=external_data,
                verbose=False,
            )
    except Exception as error:  # noqa: BLE001 - the exporter raises many types; name the step
        raise ArtifactError(f"ONNX export of the vision engine failed: {type(error).__name__}: {error}") from error
    check_graph(onnx_path)
    log.info("vision ONNX written in %.1f s (%s)", time.perf_counter() - started, onnx_path)
    return onnx_path


def check_graph(onnx_path: Path) -> None:
    """onnx.checker on the file (path form: works above 2 GB) and the I/O names and batch axis."""
    import onnx

    try:
        onnx.checker.check_model(str(onnx_path), full_check=False)
    except onnx.checker.ValidationError as error:
        raise ArtifactError(f"{onnx_path} fails onnx.checker: {error}") from error
    model = onnx.load(str(onnx_path), load_external_data=False)
    outputs = [o.name for o in model.graph.output]
    if tuple(outputs) != OUTPUT_NAMES:
        raise ArtifactError(f"{onnx_path} outputs are {outputs}, expected {list(OUTPUT_NAMES)}")
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    if not dim0.dim_param:
        raise ArtifactError(
            f"{onnx_path}: the batch axis of input {INPUT_NAME!r} is fixed at {dim0.dim_value}; expected dynamic"
        )


def run_onnx(session, images: np.ndarray, batch_size: int = 4) -> dict[str, np.ndarray]:
    """Run an ORT session over uint8 NHWC `images` in batches; outputs concatenated by name."""
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUT_NAMES}
    for start in range(0, len(images), batch_size):
        values = session.run(list(OUTPUT_NAMES), {INPUT_NAME: images[start : start + batch_size]})
        for name, value in zip(OUTPUT_NAMES, values):
            chunks[name].append(value)
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def run_torch(engine, images: np.ndarray, batch_size: int = 4) -> dict[str, np.ndarray]:
    """The same as `run_onnx` on the PyTorch engine (the parity reference)."""
    import torch

    chunks: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUT_NAMES}
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            out = engine(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])))
            for name in OUTPUT_NAMES:
                chunks[name].append(getattr(out, name).float().cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def output_shapes(session) -> dict[str, list[int | str]]:
    """Output shapes as ONNX Runtime reports them (strings for dynamic axes)."""
    shapes = {}
    for output in session.get_outputs():
        shapes[output.name] = [d if isinstance(d, (int, str)) else "?" for d in output.shape]
    return shapes


def cpu_session(onnx_path: Path):
    """An ONNX Runtime CPU session (the reference runtime for parity), errors naming the file."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ORT raises its own exception types
        raise ArtifactError(f"ONNX Runtime cannot load {onnx_path}: {error}") from error


VISION_ONNX = "vision.onnx"
PARITY_REPORT = "parity_vision.json"


def export_vision_artifact(
    engine,
    meta,
    out_dir: Path,
    images: np.ndarray,
    image_source: str,
    opset: int = 18,
    force: bool = False,
    external_data: bool | None = None,
    tolerances=None,
) -> Path:
    """The whole `eiad export onnx`: staging dir -> ONNX -> batch-4 check -> parity -> manifest -> out_dir.

    `meta` is a VisionMeta (export/formats.py). `images` are real uint8 BGR NHWC images at
    the artifact size. Returns the artifact directory. Everything is built in a staging
    folder beside `out_dir` and moved into place only after every gate passed: past the
    parity tolerances it raises ArtifactError, nothing is left behind, and an earlier
    artifact in `out_dir` stays byte-identical.
    """
    from eiad.manifest import InputSpec, Manifest, TensorSpec
    from export.artifact import inside, staged_artifact, write_new_manifest
    from export.vision.parity import VisionTolerances, check_vision_parity, write_report

    tolerances = tolerances or VisionTolerances()
    with staged_artifact(out_dir, force) as staging:
        onnx_path = export_vision_onnx(
            engine, meta.height, meta.width, inside(staging, VISION_ONNX), opset, external_data
        )
        session = cpu_session(onnx_path)
        batch4 = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.repeat(images[:1], 4, axis=0)})
        if batch4[0].shape[0] != 4:
            raise ArtifactError(
                f"{onnx_path.name} returned batch {batch4[0].shape[0]} for an input batch of 4: the batch axis is fixed"
            )
        onnx_out = run_onnx(session, images)
        torch_out = run_torch(engine, images)
        report = check_vision_parity(
            torch_out, onnx_out, meta.thresholds.image_score, meta.thresholds.pixel, image_source, tolerances
        )
        write_report(inside(staging, PARITY_REPORT), report, tolerances)
        shapes = output_shapes(session)
        manifest = Manifest(
            model_id=meta.model_id,
            backbone=meta.backbone,
            preset=meta.preset,
            input=InputSpec(name=INPUT_NAME, height=meta.height, width=meta.width),
            outputs=[TensorSpec(name=n, shape=shapes[n], dtype="float32") for n in OUTPUT_NAMES],
            class_names=list(meta.class_names),
            thresholds=meta.thresholds,
            preprocessing=meta.preprocessing,
            precision="fp32",
        )
        roles = {VISION_ONNX: "vision_onnx", PARITY_REPORT: "parity_report"}
        data_file = onnx_path.with_name(onnx_path.name + ".data")
        if data_file.is_file():
            roles[data_file.name] = "vision_onnx_data"
        write_new_manifest(staging, manifest, roles)
        del session  # ONNX Runtime may hold the file open; the staging folder is renamed next
    out_dir = Path(out_dir).expanduser().resolve()
    log.info("artifact written: %s", out_dir)
    return out_dir
