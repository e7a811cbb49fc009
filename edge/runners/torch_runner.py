"""PyTorch runner: the artifact's vision engine rebuilt from the checkpoint it was exported
from, on a CUDA GPU (or the CPU), for boxes that have a CUDA build of torch but neither
TensorRT nor onnxruntime-gpu.

On a GPU the small vision engine is launch-bound: eager PyTorch spends more time queueing
its few hundred kernels than running them. With `cuda_graphs` each batch size's kernels
are captured once and replayed as one CUDA graph, which removes that overhead (on an H100
the demo's engine went from 3.6 ms eager to 0.8 ms replayed at batch 1). A graph replays
into fixed device buffers, so inputs are copied in through pinned host memory and outputs
copied out before `run` returns: the pipeline post-processes a result while the next
batch infers.

The manifest stays the contract: the checkpoint must be the artifact's own (same backbone,
step, classes and calibrated thresholds), so verdicts are decided exactly as with the
exported graph. torch is imported here only: the edge package runs without it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from eiad.errors import ArtifactError
from eiad.manifest import Manifest, load_manifest

log = logging.getLogger(__name__)

_WARMUP_CALLS = 3  # eager calls before a capture: cuDNN/cuBLAS pick their kernels and allocate workspaces


class TorchRunner:
    def __init__(
        self,
        artifact_dir: Path,
        checkpoint: Path,
        device: str = "cuda",
        cuda_graphs: bool = True,
        threads: int = 0,
        manifest: Manifest | None = None,
    ) -> None:
        try:
            import torch
        except ImportError as error:
            raise ArtifactError(
                f"runner kind 'torch' needs PyTorch, which is not installed here ({error}); "
                "use runner kind 'onnxruntime' or install torch"
            ) from error
        from eiad.modeling.checkpoint import engine_from_checkpoint

        self._torch = torch
        self.manifest = manifest or load_manifest(Path(artifact_dir))
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ArtifactError(f"runner.device is {device!r} but this torch build sees no CUDA GPU; set device: cpu")
        if device.startswith("cuda"):
            # full fp32 as in the exported graph: TF32 moves scores near the threshold by ~1e-3
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        if device == "cpu" and threads:
            torch.set_num_threads(threads)
        started = time.perf_counter()
        checkpoint = Path(checkpoint)
        if not (checkpoint / "meta.json").is_file():
            raise ArtifactError(f"runner.checkpoint {checkpoint} is not a localization checkpoint (no meta.json there)")
        engine, saved = engine_from_checkpoint(checkpoint, device=device)
        _check_same_model(self.manifest, saved, engine, checkpoint)
        self._engine = engine
        self._device = torch.device(device)
        self._names = [o.name for o in self.manifest.outputs]
        self._graphs: dict[int, _Replay] = {}
        self._use_graphs = cuda_graphs and self._device.type == "cuda"
        self._stream = torch.cuda.Stream(self._device) if self._device.type == "cuda" else None
        self.max_batch = None  # any batch: a graph is captured per batch size on first use
        self.fixed_batch = False
        spec = self.manifest.input
        self.run(np.zeros((1, spec.height, spec.width, spec.channels), np.uint8))  # warm-up (and batch 1's graph)
        where = torch.cuda.get_device_name(self._device) if self._device.type == "cuda" else "cpu"
        self.provider = f"torch {device} ({where})" + (", CUDA graphs" if self._use_graphs else "")
        log.info("loaded %s on %s in %.2f s", checkpoint, self.provider, time.perf_counter() - started)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        if self._stream is None:
            with torch.inference_mode():
                out = self._engine(torch.from_numpy(np.ascontiguousarray(batch)))
            return {name: getattr(out, name).float().numpy() for name in self._names}
        replay = self._graphs.get(len(batch))
        if replay is None:
            replay = self._graphs[len(batch)] = self._prepare(len(batch))
        with torch.cuda.stream(self._stream), torch.inference_mode():
            replay.host_in.numpy()[...] = batch
            replay.device_in.copy_(replay.host_in, non_blocking=True)
            replay.launch()
            for name in self._names:
                replay.host_out[name].copy_(replay.device_out[name], non_blocking=True)
            self._stream.synchronize()
        # copies: the pinned buffers are overwritten by the next call while this result is finished
        return {name: replay.host_out[name].numpy().copy() for name in self._names}

    def _prepare(self, size: int) -> _Replay:
        """Fixed device and pinned host buffers for one batch size, and its CUDA graph."""
        torch = self._torch
        spec = self.manifest.input
        shape = (size, spec.height, spec.width, spec.channels)
        device_in = torch.zeros(shape, dtype=torch.uint8, device=self._device)
        host_in = torch.zeros(shape, dtype=torch.uint8).pin_memory()
        with torch.cuda.stream(self._stream), torch.inference_mode():
            for _ in range(_WARMUP_CALLS):
                out = self._engine(device_in)
            self._stream.synchronize()
            graph = None
            if self._use_graphs:
                try:
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph, stream=self._stream):
                        out = self._engine(device_in)
                except RuntimeError as error:  # an op that cannot be captured: run eagerly, slower but right
                    log.warning("CUDA graph capture failed (%s): the engine runs eagerly", error)
                    self._use_graphs, graph = False, None
                    out = self._engine(device_in)
        device_out = {name: getattr(out, name).float() for name in self._names}
        host_out = {name: torch.empty(t.shape, dtype=t.dtype).pin_memory() for name, t in device_out.items()}
        if graph is not None:
            launch = graph.replay
        else:

            def launch() -> None:
                with torch.inference_mode():
                    fresh = self._engine(device_in)
                    for name in self._names:
                        device_out[name].copy_(getattr(fresh, name))

        log.info("batch %d prepared on %s (%s)", size, self._device, "CUDA graph" if graph else "eager")
        return _Replay(device_in, host_in, device_out, host_out, launch)

    def close(self) -> None:
        self._graphs.clear()
        self._engine = None


class _Replay:
    """One batch size's buffers and the call that fills `device_out` from `device_in`."""

    def __init__(self, device_in, host_in, device_out, host_out, launch) -> None:
        self.device_in, self.host_in = device_in, host_in
        self.device_out, self.host_out = device_out, host_out
        self.launch = launch


def _check_same_model(manifest: Manifest, saved, engine, checkpoint: Path) -> None:
    """The checkpoint must be the one the artifact was exported from, else its verdicts
    would be decided with another model's thresholds."""
    problems = []
    if saved.meta.get("backbone") != manifest.backbone:
        problems.append(f"backbone {saved.meta.get('backbone')!r} vs the artifact's {manifest.backbone!r}")
    if not manifest.model_id.endswith(f"-step{saved.step}"):
        problems.append(f"step {saved.step} vs the artifact's model {manifest.model_id!r}")
    if saved.class_names != list(manifest.class_names):
        problems.append(f"classes {saved.class_names} vs the artifact's {list(manifest.class_names)}")
    thresholds = saved.thresholds or {}
    for key in ("image_score", "pixel"):
        if thresholds.get(key) != getattr(manifest.thresholds, key):
            problems.append(
                f"{key} threshold {thresholds.get(key)} vs the artifact's {getattr(manifest.thresholds, key)}"
            )
    if (engine.height, engine.width) != (manifest.input.height, manifest.input.width):
        problems.append(
            f"input {engine.width}x{engine.height} px vs the artifact's {manifest.input.width}x{manifest.input.height}"
        )
    from eiad.modeling.engine import VisionEngineOutput

    missing = [o.name for o in manifest.outputs if o.name not in VisionEngineOutput._fields]
    if missing:
        problems.append(f"the engine has no outputs {missing} that the manifest lists")
    if problems:
        raise ArtifactError(
            f"runner.checkpoint {checkpoint} is not the checkpoint this artifact was exported from: "
            + "; ".join(problems)
            + ". Point runner.checkpoint at the export's --checkpoint"
        )
