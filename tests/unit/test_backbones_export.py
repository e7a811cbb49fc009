"""forward_vision exports to ONNX (dynamo) with a dynamic batch and matches torch in ONNX Runtime;
MiniCPM-V-2.6's vision tower maps onto transformers' SigLIP from its checkpoint keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eiad.errors import ModelError
from eiad.modeling.backbone import minicpmv26
from eiad.modeling.backbone.loading import load_backbone
from eiad.modeling.presets import build_tiny_preset


class _Vision(torch.nn.Module):
    def __init__(self, bb) -> None:
        super().__init__()
        self.bb = bb

    def forward(self, pixel_values):
        out = self.bb.forward_vision(pixel_values, [0, -1])
        return out.layer_features[0], out.layer_features[1], out.tokens


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny-minicpmv46", "tiny-llava-siglip"])
def test_vision_pass_exports_with_dynamic_batch(name, tmp_path):
    import onnxruntime as ort

    bb = load_backbone(build_tiny_preset(name, tmp_path / name))
    model = _Vision(bb).eval()
    example = torch.randn(2, 3, bb.spec.height, bb.spec.width)  # batch >= 2, or dynamo may pin it at 1
    path = tmp_path / "vision.onnx"
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        input_names=["pixel_values"],
        dynamic_shapes={"pixel_values": {0: torch.export.Dim("batch")}},
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(4, 3, bb.spec.height, bb.spec.width)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = model(x)
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4)


def _tiny_v26_state(info: minicpmv26.MiniCPMV26Info) -> dict:
    """A synthetic 2.6-style checkpoint: vpm.* from a tiny SigLIP + LLM/resampler keys to ignore."""
    from transformers import SiglipVisionModel

    torch.manual_seed(0)
    tower = SiglipVisionModel(minicpmv26.vision_config(info))
    state = {"vpm." + k: v for k, v in tower.state_dict().items()}
    state["llm.model.embed_tokens.weight"] = torch.zeros(10, info.text_hidden_size)
    state["resampler.query"] = torch.zeros(info.query_num, info.text_hidden_size)
    return state, tower


CONFIG_26 = {
    "model_type": "minicpmv",
    "hidden_size": 32,
    "query_num": 8,
    "slice_config": {"scale_resolution": 56},
    "vision_config": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "patch_size": 14,
        "image_size": 56,
    },
}


def test_minicpmv26_config_and_key_mapping(tmp_path):
    info = minicpmv26.parse_config(CONFIG_26)
    assert (info.vision_layers, info.position_grid, info.query_num, info.slice_px) == (2, 4, 8, 56)
    with pytest.raises(ModelError, match="missing key 'vision_config'"):
        minicpmv26.parse_config({"model_type": "minicpmv", "hidden_size": 3})
    state, tower = _tiny_v26_state(info)
    mapped = minicpmv26.map_vision_keys(state)
    assert set(mapped) == set(tower.state_dict())
    with pytest.raises(ModelError, match="vpm"):
        minicpmv26.map_vision_keys({"llm.x": torch.zeros(1)})
    # given the synthetic checkpoint saved as safetensors, when loaded, then the fixed-size pass equals SigLIP's
    import json

    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(CONFIG_26))
    spec = minicpmv26.PreprocessSpec(56, 56, (0.5,) * 3, (0.5,) * 3)
    vision = minicpmv26.load_vision_tower(tmp_path, spec)
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        ours = vision.forward_vision(x, [0, -1])
        ref = tower(x, output_hidden_states=True)
    assert vision.patch_grid() == (4, 4)
    torch.testing.assert_close(ours.layer_features[0], ref.hidden_states[1])
    torch.testing.assert_close(ours.tokens, ref.last_hidden_state)
