"""MiniCPM-V-2.6's vision tower at a fixed slice size, batched and exportable.

Its tower looks position embeddings up in a 70x70 table by nearest bucket of each
patch's fractional coordinates (NaViT style); for a fixed input the ids are computed
once and kept as a buffer. Attention is plain batched SDPA (one image per sequence).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.vision_utils import get_vision_nearest_position_ids

from eiad.errors import ModelError
from eiad.modeling.backbone.base import VisionFeatures
from eiad.modeling.backbone.minicpmv46 import _encoder_layer
from eiad.preprocess import PreprocessSpec


class MiniCPMV26Vision(torch.nn.Module):
    """forward_vision(pixel_values (N,3,H,W), layers) -> VisionFeatures, like EiadBackbone's."""

    family = "minicpmv2_6"

    def __init__(self, tower, spec: PreprocessSpec) -> None:
        super().__init__()
        self.tower = tower
        self.spec = spec
        cfg = tower.config
        self.patch = int(cfg.patch_size)
        self.vision_hidden_size = int(cfg.hidden_size)
        self.num_vision_layers = int(cfg.num_hidden_layers)
        if spec.height % self.patch or spec.width % self.patch:
            raise ModelError(f"minicpmv2_6: input {spec.height}x{spec.width} px must be a multiple of {self.patch}")
        per_side = int(cfg.image_size) // self.patch
        pos = get_vision_nearest_position_ids(torch.tensor([list(self.patch_grid())]), per_side)
        self.register_buffer("pos_ids", pos.long(), persistent=False)

    def patch_grid(self) -> tuple[int, int]:
        return self.spec.height // self.patch, self.spec.width // self.patch

    def forward_vision(self, pixel_values: torch.Tensor, layers: Sequence[int]) -> VisionFeatures:
        vm = getattr(self.tower, "vision_model", self.tower)  # transformers 5 flattened SigLIP
        wanted = [i + self.num_vision_layers if i < 0 else i for i in layers]
        h = vm.embeddings.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        h = h + vm.embeddings.position_embedding(self.pos_ids).unsqueeze(0)
        taps = {}
        for i, layer in enumerate(vm.encoder.layers):
            h = _encoder_layer(layer, h)
            if i in wanted:
                taps[i] = h
        return VisionFeatures([taps[i] for i in wanted], vm.post_layernorm(h))

    def forward(self, pixel_values: torch.Tensor, layers: Sequence[int] = (-1,)) -> VisionFeatures:
        return self.forward_vision(pixel_values, layers)
