"""The vision engine exports to ONNX (dynamo) and ONNX Runtime matches torch at batch 3."""

import numpy as np
import pytest
import torch

from eiad.modeling.engine import EiadVisionEngine, VisionEngineOutput, export_onnx
from eiad.modeling.localization import build_localizer
from tests.support.preset_cache import preset_cache  # noqa: F401 (fixture)
from tests.unit.test_localization_support import TinyLlavaBackbone

ort = pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_onnx_export_matches_torch_at_batch_three(tmp_path):
    # given an engine with a reference bank (a constant of the graph)
    torch.manual_seed(0)
    backbone = TinyLlavaBackbone()
    localizer = build_localizer(backbone, (1, 3), ["hole", "stain"], reference=True)
    engine = EiadVisionEngine(backbone, localizer).eval()
    ref = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        localizer.set_reference(backbone.forward_vision(engine.preprocess(ref), engine.taps).layer_features)
    # when exported with a batch-2 example
    path = tmp_path / "vision.onnx"
    export_onnx(engine, path, batch=2)
    # then ONNX Runtime at batch 3 gives the torch outputs, under the manifest's names
    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    names = [o.name for o in session.get_outputs()]
    assert names == list(VisionEngineOutput._fields)
    got = dict(zip(names, session.run(None, {"image": images})))
    with torch.no_grad():
        want = engine(torch.from_numpy(images))._asdict()
    for name in names:
        np.testing.assert_allclose(got[name], want[name].numpy(), atol=2e-5, rtol=1e-4, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["tiny-minicpmv46", "tiny-llava-siglip"])
def test_engine_on_the_real_tiny_presets_exports_with_parity(tmp_path, preset, preset_cache):
    # given the project's backbone adapter on a tiny preset of each family
    from eiad.modeling.backbone.loading import load_backbone

    backbone = load_backbone(preset)
    engine = EiadVisionEngine(backbone, build_localizer(backbone, (1, 3), ["hole"], decoder_channels=8)).eval()
    # when exported and run by ONNX Runtime at batch 3
    export_onnx(engine, tmp_path / "v.onnx")
    images = np.random.default_rng(2).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    got = ort.InferenceSession(str(tmp_path / "v.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"image": images}
    )
    with torch.no_grad():
        want = engine(torch.from_numpy(images))
    # then every output matches torch
    for name, g, w in zip(VisionEngineOutput._fields, got, want):
        np.testing.assert_allclose(g, w.numpy(), atol=2e-5, rtol=1e-4, err_msg=name)
