"""TensorRT engine build and parity: run where TensorRT and a CUDA GPU exist, skip elsewhere."""

from __future__ import annotations

import importlib.util

import pytest

from export.tensorrt.build import engine_key

pytestmark = pytest.mark.gpu

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_engine_key_changes_with_every_part():
    base = ("ab" * 32, "10.3.0", "Orin (nvgpu)", (8, 7), "fp16", (1, 4, 8))
    keys = {engine_key(*base)}
    for i, other in enumerate(["cd" * 32, "10.4.0", "NVIDIA H100", (9, 0), "int8", (1, 8, 16)]):
        changed = list(base)
        changed[i] = other
        keys.add(engine_key(*changed))
    assert len(keys) == 7 and all(k.endswith(".engine") is False for k in keys)


def test_missing_tensorrt_gives_clear_error():
    if HAS_TRT:
        pytest.skip("TensorRT is installed here: the missing-package message cannot be shown")
    from eiad.errors import ArtifactError
    from export.formats import FORMATS

    with pytest.raises(ArtifactError, match="needs tensorrt"):
        FORMATS["tensorrt"].check("fp16")


@pytest.mark.skipif(
    not HAS_TRT, reason="TensorRT is not installed (no package for this machine; it runs on the edge box)"
)
def test_fp16_engine_builds_and_matches_onnxruntime(tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible")
    from export.tensorrt.build import build_engine_for_artifact
    from export.verify import verify_artifact
    from export.vision.exporter import export_vision_artifact
    from export.vision.parity import load_images
    from tests.unit.test_llm_fixtures import TinyEngine, meta, real_images

    folder = real_images(tmp_path / "img", 8)
    images = load_images(sorted(folder.glob("*.png")), 64, 64)
    art = export_vision_artifact(TinyEngine().eval(), meta(), tmp_path / "art", images, "skimage")
    engine = build_engine_for_artifact(art, "fp16", folder, 8, 512)
    assert engine.is_file() and (art / "tensorrt" / "timing.cache").is_file()
    again = build_engine_for_artifact(art, "fp16", folder, 8, 512)  # same key: reused, not rebuilt
    assert again == engine
    verify_artifact(art)
