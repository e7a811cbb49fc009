"""Shared helpers for the localization tests: a tiny real backbone and a tiny split on disk.

`TinyLlavaBackbone` is a hand-written stand-in with the EiadBackbone interface, over a
real transformers LLaVA (SigLIP tower + Qwen2 LLM) built from a config with random
weights. Tests that need the project's real adapter use `real_backbone()`, which returns
None until eiad.modeling.backbone.loading exists.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from eiad.preprocess import PreprocessSpec


class VisionFeatures(NamedTuple):
    layer_features: list[Tensor]
    tokens: Tensor


class TinyLlavaBackbone(nn.Module):
    family = "fake_llava"
    lora_target_regex = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"

    def __init__(self, size: int = 64, patch: int = 8, layers: int = 4, seed: int = 0) -> None:
        super().__init__()
        from transformers import LlavaConfig, LlavaForConditionalGeneration, Qwen2Config, SiglipVisionConfig

        torch.manual_seed(seed)
        vision = SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=layers,
            num_attention_heads=2,
            image_size=size,
            patch_size=patch,
        )
        text = Qwen2Config(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            vocab_size=300,
        )
        config = LlavaConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=299,
            vision_feature_layer=-1,
            vision_feature_select_strategy="full",
        )
        self.hf_model = LlavaForConditionalGeneration(config)
        self.spec = PreprocessSpec(height=size, width=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        self.vision_hidden_size = 32
        self.text_hidden_size = 32
        self.num_vision_layers = layers
        self._grid = (size // patch, size // patch)

    def patch_grid(self) -> tuple[int, int]:
        return self._grid

    def forward_vision(self, pixel_values: Tensor, layers: Sequence[int]) -> VisionFeatures:
        out = self.hf_model.model.vision_tower(pixel_values, output_hidden_states=True)
        tokens = self.hf_model.model.multi_modal_projector(out.last_hidden_state)
        return VisionFeatures([out.hidden_states[i + 1] for i in layers], tokens)  # 0-based layers, as E's

    @torch.no_grad()
    def embed_text(self, texts: Sequence[str]) -> Tensor:
        table = self.hf_model.get_input_embeddings().weight
        rows = [table[torch.tensor([b % 299 for b in t.encode()])].mean(0) for t in texts]
        return torch.stack(rows)


def real_backbone(preset: str = "tiny-llava-siglip"):
    """E's real adapter on a tiny preset, or None while eiad.modeling.backbone.loading is missing."""
    try:
        from eiad.modeling.backbone.loading import load_backbone
    except ImportError:
        return None
    return load_backbone(preset)


def draw_part(rng: np.random.Generator, size: int, defect: bool) -> tuple[np.ndarray, np.ndarray]:
    """A textured grey part (BGR uint8) and its mask; a defect is a dark blob."""
    base = rng.integers(120, 140, size=(size, size), dtype=np.uint8)
    image = cv2.merge([base, base, base])
    mask = np.zeros((size, size), np.uint8)
    if defect:
        cx, cy = rng.integers(size // 5, 4 * size // 5, size=2)
        radius = int(rng.integers(size // 12, size // 6))
        cv2.circle(mask, (int(cx), int(cy)), radius, 255, -1)
        image[mask > 127] = (20, 30, 200)
    return image, mask


def make_split(root: Path, n_train: int = 8, n_held_out: int = 6, size: int = 64, seed: int = 0) -> Path:
    """Write images, masks and a split.json in the eiad/split.py format; returns its path.
    The calibration and test parts get `n_held_out` images each (different ones)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[dict]] = {"train": [], "calibration": [], "test": []}
    for split, count in (("train", n_train), ("calibration", n_held_out), ("test", n_held_out)):
        for i in range(count):
            defect = i % 2 == 1
            image, mask = draw_part(rng, size, defect)
            image_path = root / f"{split}_{i}.png"
            cv2.imwrite(str(image_path), image)
            mask_path = None
            if defect:
                mask_path = root / f"{split}_{i}_mask.png"
                cv2.imwrite(str(mask_path), mask)
            splits[split].append(
                {
                    "image": str(image_path),
                    "mask": str(mask_path) if mask_path else None,
                    "label": "NG" if defect else "OK",
                    "defect": ("hole" if i % 4 == 1 else "stain") if defect else None,
                    "dataset": "Fake",
                    "sub": "part",
                }
            )
    path = root / "split.json"
    path.write_text(
        json.dumps(
            {
                "seed": seed,
                "fractions": {"calibration": 0.3, "test": 0.3},
                "root": str(root),
                "classes": ["hole", "stain"],
                **splits,
            }
        )
    )
    return path


def test_support_split_round_trips_through_load_split(tmp_path):
    # given a split written by the helper
    from eiad.split import load_split

    path = make_split(tmp_path, n_train=4, n_held_out=2)
    # when it is loaded with the project's reader
    index = load_split(path)
    # then it has the entries and classes the helper wrote
    assert len(index.train) == 4 and len(index.calibration) == 2 and len(index.test) == 2
    assert index.classes == ["hole", "stain"]
    assert index.train[1].label == "NG" and Path(index.train[1].mask).is_file()
