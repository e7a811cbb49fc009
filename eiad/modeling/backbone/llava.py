"""LLaVA with a SigLIP vision tower (transformers `llava` + `siglip_vision_model`).

The plainest family to export: the SigLIP tower takes a fixed-size (N, 3, H, W) batch with
learned absolute positions, so `forward_vision` is the tower itself with
`output_hidden_states`; no precomputed buffers. `tokens` is the hidden state the LLaVA
config selects (`vision_feature_layer`), i.e. the projector's input. Real checkpoints of
this shape: llava-hf/llava-interleave-qwen-0.5b-hf / -7b-hf (SigLIP-so400m, 384 px).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from eiad.errors import ModelError
from eiad.modeling.backbone.base import LLM_PROJ, EiadBackbone, VisionFeatures
from eiad.modeling.backbone.tiny import CHAT_TEMPLATE, TEXT_INIT_STD, TINY_PATCH_PX, TINY_SIZE_PX, train_tokenizer
from eiad.preprocess import PreprocessSpec


def build_tiny():
    """A ~1 MB LLaVA (SigLIP tower 224 px / patch 14 + Qwen2 LLM) with random weights."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor, SiglipImageProcessorPil

    tok = train_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<image>"},
    )
    template = CHAT_TEMPLATE.replace("IMAGE_TOKEN", "<image>")
    vision = {
        "model_type": "siglip_vision_model",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "image_size": TINY_SIZE_PX,
        "patch_size": TINY_PATCH_PX,
    }
    text = {
        "model_type": "qwen2",
        "vocab_size": len(tok),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 1024,
        "initializer_range": TEXT_INIT_STD,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
    )
    model = LlavaForConditionalGeneration(config).eval()
    ip = SiglipImageProcessorPil(size={"height": TINY_SIZE_PX, "width": TINY_SIZE_PX})
    processor = LlavaProcessor(
        image_processor=ip,
        tokenizer=tok,
        patch_size=TINY_PATCH_PX,
        vision_feature_select_strategy="full",
        image_token="<image>",
        chat_template=template,
    )
    tok.chat_template = template
    return model, processor


class LlavaSiglipBackbone(EiadBackbone):
    family = "llava_siglip"
    lora_target_regex = rf".*(language_model|multi_modal_projector).*\.({LLM_PROJ[1:-1]}|linear_1|linear_2)"

    def __init__(self, hf_model, processor, spec: PreprocessSpec) -> None:
        super().__init__(hf_model, processor, spec)
        cfg = hf_model.config
        if cfg.vision_config.model_type not in ("siglip_vision_model", "siglip2_vision_model"):
            raise ModelError(f"llava backbone needs a SigLIP vision tower, got {cfg.vision_config.model_type!r}")
        if cfg.vision_feature_select_strategy != "full" or not isinstance(cfg.vision_feature_layer, int):
            raise ModelError(
                "llava backbone: only vision_feature_select_strategy='full' with one vision_feature_layer "
                "is supported (SigLIP has no CLS token)"
            )
        self.patch = int(cfg.vision_config.patch_size)
        self.vision_hidden_size = int(cfg.vision_config.hidden_size)
        self.text_hidden_size = int(cfg.text_config.hidden_size)
        self.num_vision_layers = int(cfg.vision_config.num_hidden_layers)
        self.feature_layer = int(cfg.vision_feature_layer)

    def patch_grid(self) -> tuple[int, int]:
        return self.spec.height // self.patch, self.spec.width // self.patch

    def forward_vision(self, pixel_values: torch.Tensor, layers: Sequence[int]) -> VisionFeatures:
        wanted = self._layer_indices(layers)
        tower = self.hf_model.model.vision_tower
        out = tower(pixel_values.to(tower.dtype), output_hidden_states=True)
        hidden = out.hidden_states  # [embeddings, after layer 0, ..., after layer L-1]
        return VisionFeatures([hidden[i + 1] for i in wanted], hidden[self.feature_layer])

    def project_vision(self, tokens: torch.Tensor) -> torch.Tensor:
        """LLaVA's multi_modal_projector on the selected hidden state (one embedding per patch)."""
        projector = self.hf_model.model.multi_modal_projector
        return projector(tokens.to(next(projector.parameters()).dtype))

    def _encode(self, image: Image.Image, text: str) -> dict[str, torch.Tensor]:
        enc = self.processor(images=[image], text=[text], return_tensors="pt", return_token_type_ids=False)
        return {"input_ids": enc["input_ids"], "pixel_values": enc["pixel_values"]}

    @classmethod
    def load(cls, target: str, *, device: str = "cpu", dtype=None) -> LlavaSiglipBackbone:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model = AutoModelForImageTextToText.from_pretrained(target, dtype=dtype).to(device).eval()
        processor = AutoProcessor.from_pretrained(target)
        ip = processor.image_processor
        size = ip.size
        spec = PreprocessSpec(int(size["height"]), int(size["width"]), tuple(ip.image_mean), tuple(ip.image_std))
        return cls(model, processor, spec).to(device)
