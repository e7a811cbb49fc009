"""MiniCPM-V 4.6 (transformers `minicpmv4_6`): tiny builder and the fixed-size vision pass.

The Hugging Face tower takes NaViT-packed pixels (all images' patches in one sequence)
plus `target_sizes`, and derives position ids, window indices and attention splits from
them in Python at run time, which neither batches nor exports. `MiniCPMV46Vision` runs
the same weights on a fixed (H, W): position ids and the 2x2 window order are computed
once for that size and kept as buffers, images are a plain batch, and attention is
ordinary batched attention (each image attends only to itself, as the packed version does).
After `insert_layer_id` the tower merges 2x2 windows, so deeper layers have a grid half as
fine; their features are repeated 2x2 back onto the patch grid so every tapped layer has
`gh*gw` tokens. `tokens` is the tower's last hidden state on the merged grid, raster order,
exactly what the HF model hands its merger/projector.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from transformers.vision_utils import get_vision_nearest_position_ids

from eiad.errors import ModelError
from eiad.modeling.backbone.base import LLM_PROJ, EiadBackbone, VisionFeatures
from eiad.modeling.backbone.tiny import CHAT_TEMPLATE, TEXT_INIT_STD, TINY_PATCH_PX, TINY_SIZE_PX, train_tokenizer
from eiad.preprocess import PreprocessSpec

SPECIAL = {
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "image_start_token": "<image>",
    "image_end_token": "</image>",
    "slice_start_token": "<slice>",
    "slice_end_token": "</slice>",
    "image_id_start_token": "<image_id>",
    "image_id_end_token": "</image_id>",
}


def build_tiny():
    """A ~1 MB MiniCPM-V 4.6 with random weights and its processor (224 px, patch 14, no slicing)."""
    from transformers import MiniCPMV4_6Config, MiniCPMV4_6ForConditionalGeneration, MiniCPMV4_6ImageProcessorPil

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *SPECIAL.values()]
    tok = train_tokenizer(
        specials, eos_token="<|im_end|>", pad_token="<|endoftext|>", extra_special_tokens=dict(SPECIAL)
    )
    tok.chat_template = CHAT_TEMPLATE.replace("IMAGE_TOKEN", SPECIAL["image_token"])
    text = {
        "model_type": "qwen3_5_text",
        "vocab_size": len(tok),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "layer_types": ["linear_attention", "full_attention"],
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 2,
        "linear_key_head_dim": 16,
        "linear_value_head_dim": 16,
        "max_position_embeddings": 1024,
        "initializer_range": TEXT_INIT_STD,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    vision = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "image_size": TINY_SIZE_PX,
        "patch_size": TINY_PATCH_PX,
    }
    config = MiniCPMV4_6Config(
        text_config=text,
        vision_config=vision,
        insert_layer_id=1,
        image_size=TINY_SIZE_PX,
        image_token_id=tok.convert_tokens_to_ids(SPECIAL["image_token"]),
        video_token_id=tok.convert_tokens_to_ids(SPECIAL["video_token"]),
    )
    model = MiniCPMV4_6ForConditionalGeneration(config).eval()
    ip = MiniCPMV4_6ImageProcessorPil(
        scale_resolution=TINY_SIZE_PX, patch_size=TINY_PATCH_PX, slice_mode=False, max_slice_nums=1, use_image_id=False
    )
    return model, ImageTextProcessor(ip, tok)


class ImageTextProcessor:
    """MiniCPM-V 4.6's processor for single 448-style slices, without the video half.

    transformers' `MiniCPMV4_6Processor` cannot be built without torchvision (its video
    processor requires it). This does what it does with `slice_mode=False`: the image
    processor packs pixels, and each image placeholder in the text becomes
    `<image>` + image_token * (gh*gw/16) + `</image>` (optionally after an image-id tag).
    """

    def __init__(self, image_processor, tokenizer, chat_template: str | None = None) -> None:
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None)

    def apply_chat_template(self, messages, **kwargs):
        return self.tokenizer.apply_chat_template(messages, chat_template=self.chat_template, **kwargs)

    def __call__(self, images, text: str, **kwargs) -> dict:
        pix = self.image_processor(images, slice_mode=False, return_tensors="pt")
        divisor = 4 if getattr(self.image_processor, "downsample_mode", "16x") == "4x" else 16
        tok = self.tokenizer
        parts = text.split(tok.image_token)
        if len(parts) - 1 != len(pix["target_sizes"]):
            raise ValueError(f"prompt has {len(parts) - 1} image placeholders for {len(pix['target_sizes'])} images")
        out = parts[0]
        for i, (size, rest) in enumerate(zip(pix["target_sizes"], parts[1:])):
            n = int(size[0] * size[1]) // divisor
            tag = f"{tok.image_id_start_token}{i}{tok.image_id_end_token}" if self.image_processor.use_image_id else ""
            out += tag + tok.image_start_token + tok.image_token * n + tok.image_end_token + rest
        enc = tok(out, return_tensors="pt", add_special_tokens=False, return_token_type_ids=False)
        return {"input_ids": enc["input_ids"], "pixel_values": pix["pixel_values"], "target_sizes": pix["target_sizes"]}

    def save_pretrained(self, out_dir) -> None:
        self.image_processor.save_pretrained(out_dir)
        self.tokenizer.save_pretrained(out_dir)


class MiniCPMV46Backbone(EiadBackbone):
    family = "minicpmv4_6"
    # Qwen3.5's linear-attention layers name their projections in_proj_* / out_proj.
    lora_target_regex = (
        rf".*(language_model|model\.merger).*\.({LLM_PROJ[1:-1]}|in_proj_\w+|out_proj|linear_1|linear_2)"
    )
    pixel_cat_dims = {"pixel_values": -1, "target_sizes": 0}

    def __init__(self, hf_model, processor, spec: PreprocessSpec) -> None:
        super().__init__(hf_model, processor, spec)
        tower = hf_model.model.vision_tower
        vcfg = tower.config
        self.patch = int(vcfg.patch_size)
        self.vision_hidden_size = int(vcfg.hidden_size)
        self.text_hidden_size = int(hf_model.config.text_config.hidden_size)
        self.num_vision_layers = len(tower.encoder.layers)
        self.insert_layer_id = int(vcfg.insert_layer_id)
        gh, gw = self.patch_grid()
        if gh % 2 or gw % 2:
            raise ModelError(f"minicpmv4_6: input {spec.height}x{spec.width} px must be a multiple of {2 * self.patch}")
        sizes = torch.tensor([[gh, gw]])
        pos = get_vision_nearest_position_ids(sizes, tower.embeddings.num_patches_per_side)
        window, _, _ = tower.vit_merger.get_window_index(sizes)
        # Fixed-size buffers (not saved in state dicts): computed once for the spec size.
        self.register_buffer("pos_ids", pos.long(), persistent=False)
        self.register_buffer("window_index", window.long(), persistent=False)

    def patch_grid(self) -> tuple[int, int]:
        return self.spec.height // self.patch, self.spec.width // self.patch

    def forward_vision(self, pixel_values: torch.Tensor, layers: Sequence[int]) -> VisionFeatures:
        tower = self.hf_model.model.vision_tower
        wanted = self._layer_indices(layers)
        gh, gw = self.patch_grid()
        x = tower.embeddings.patch_embedding(pixel_values.to(tower.dtype)).flatten(2).transpose(1, 2)
        h = x + tower.embeddings.position_embedding(self.pos_ids).unsqueeze(0)
        taps: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(tower.encoder.layers):
            h = _encoder_layer(layer, h)
            if i in wanted:
                taps[i] = h if i <= self.insert_layer_id else _unmerge(h, gh, gw)
            if i == self.insert_layer_id:
                h = _window_merge(tower.vit_merger, h, self.window_index)
        tokens = tower.post_layernorm(h)
        return VisionFeatures([taps[i] for i in wanted], tokens)

    def project_vision(self, tokens: torch.Tensor) -> torch.Tensor:
        """HF's `merger` for a fixed grid, batched: (N, gh/2*gw/2, D) -> (N, gh*gw/16, text_hidden).

        HF loops over images with `target_sizes` (a run-time Python loop); at the spec size the
        grid is known, so each merge round is one reshape/permute of the whole batch.
        """
        merger = self.hf_model.model.merger
        kh, kw = merger.merge_kernel_size
        h, w = (g // 2 for g in self.patch_grid())  # grid after the tower's window merger
        x = tokens.to(next(merger.parameters()).dtype)
        for mlp in merger.mlp:
            n, _, d = x.shape
            x = x.reshape(n, h // kh, kh, w // kw, kw, d).permute(0, 1, 3, 2, 4, 5).reshape(n, -1, kh * kw * d)
            h, w = h // kh, w // kw
            x = mlp(x).reshape(n, h * w, -1)
        return x

    def _image_wrap(self) -> tuple[str, str]:
        tok = self.tokenizer
        tag = (
            f"{tok.image_id_start_token}0{tok.image_id_end_token}"
            if self.processor.image_processor.use_image_id
            else ""
        )
        return tag + tok.image_start_token, tok.image_end_token

    def _encode(self, image: Image.Image, text: str) -> dict[str, torch.Tensor]:
        return self.processor([image], text)

    @classmethod
    def load(cls, target: str, *, device: str = "cpu", dtype=None) -> MiniCPMV46Backbone:
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

        model = AutoModelForImageTextToText.from_pretrained(target, dtype=dtype).to(device).eval()
        ip = AutoImageProcessor.from_pretrained(target)
        tok = AutoTokenizer.from_pretrained(target)
        size = int(ip.scale_resolution)
        spec = PreprocessSpec(size, size, tuple(ip.image_mean), tuple(ip.image_std))
        return cls(model, ImageTextProcessor(ip, tok), spec).to(device)


def _attention(attn, h: torch.Tensor) -> torch.Tensor:
    """The tower's attention over whole sequences (batch-first), as SDPA."""
    n, t, d = h.shape
    heads = attn.num_heads
    q, k, v = (p(h).view(n, t, heads, d // heads).transpose(1, 2) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
    scale = attn.scaling if hasattr(attn, "scaling") else attn.scale  # MiniCPM vs SigLIP naming
    out = F.scaled_dot_product_attention(q, k, v, scale=scale)
    return attn.out_proj(out.transpose(1, 2).reshape(n, t, d))


def _encoder_layer(layer, h: torch.Tensor) -> torch.Tensor:
    h = h + _attention(layer.self_attn, layer.layer_norm1(h))
    return h + layer.mlp(layer.layer_norm2(h))


def _window_merge(merger, h: torch.Tensor, window_index: torch.Tensor) -> torch.Tensor:
    """HF's ViT window-attention merger, batched: 2x2 windows -> one token each."""
    n, t, d = h.shape
    size = merger.window_kernel_size[0] * merger.window_kernel_size[1]
    residual = h[:, window_index, :]
    w = merger.layer_norm1(h)[:, window_index, :].reshape(n * (t // size), size, d)
    w = residual + _attention(merger.self_attn, w).reshape(n, t, d)
    patch = w.reshape(n, t // size, size, d)
    out = merger.linear_2(merger.act(merger.linear_1(merger.pre_norm(patch.flatten(2)))))
    return out + patch.mean(dim=2)


def _unmerge(h: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """(N, gh/2*gw/2, D) raster tokens -> (N, gh*gw, D) by repeating each over its 2x2 window."""
    n, _, d = h.shape
    grid = h.reshape(n, gh // 2, 1, gw // 2, 1, d).expand(n, gh // 2, 2, gw // 2, 2, d)
    return grid.reshape(n, gh * gw, d)
