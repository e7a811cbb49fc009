"""The decoupled defect localization module: patch features in, defect mask out.

It reads the vision tower's patch features at a few depths (the same features the LLM's
explanation uses, so one vision pass per frame serves both), and never touches the LLM.

    patch features at taps t1..tk  (N, gh*gw, D) each          image (N,3,H,W) normalised
            |  per-tap Linear(D->P)                                     |
            v                                                          conv stem (stride 4)
    projected patches ---cos---> prompt embeddings (normal, defect_1..C)  |
            |                 (text_proj(embed_text(prompts)) + learned delta)
            |  [optional 1-shot: 1 - max cos to a normal reference's patches]
            v                                                          |
    [sim maps | ref maps | 1x1-squeezed features]  (N, ch, gh, gw)      |  (H/2: s2, H/4: s4)
            |  2 x conv3x3  -> patch-level features F                   |
            +--> upsample to H/4 ----------- concat ----------------- s4
                                               |  2 x conv3x3 -> G (H/4)
                          [fine: upsample to H/2, concat s2, conv3x3]
                                               |  1x1, bilinear upsample
                                               v
                                       mask logits (N,1,H,W)
    pooled F (+ G pooled under the predicted mask) --> image logit (N,), class logits (N,C)
    [class_maps: 1x1 convs on G and s4 -> class logits per H/4 cell, averaged under the
     predicted mask and added to the class logits]

`fine` adds the H/2 stage, so a 1-2 px scratch is not averaged away at H/4; `mask_pooling`
lets the class head look at the defect itself (features averaged under the predicted
mask) rather than at the whole image, where the part's texture dominates; `class_maps`
classifies every H/4 cell, so training gets one class target per defect cell (a dense
signal, as in semantic segmentation) instead of one per image.

Thread safety: a module instance is not safe to call from several threads while training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORMAL_PROMPT = "a photo of a flawless part"
DEFECT_PROMPT = "a photo of a damaged part"


def default_prompts(class_names: Sequence[str]) -> list[str]:
    """Prompt texts: index 0 is the normal prompt, 1 a generic defect, then one per class."""
    return [NORMAL_PROMPT, DEFECT_PROMPT] + [
        f"a photo of a part with a {name.replace('_', ' ')}" for name in class_names
    ]


@dataclass(frozen=True)
class LocalizerSpec:
    """Everything needed to rebuild a `DefectLocalizer` (stored in every checkpoint).

    `image_size` is (height, width) in pixels; `grid` the patch grid (rows, cols).
    """

    vision_hidden_size: int
    text_hidden_size: int
    grid: tuple[int, int]
    image_size: tuple[int, int]
    taps: tuple[int, ...]
    class_names: tuple[str, ...]
    prompts: tuple[str, ...]
    proj_dim: int = 64
    feature_channels: int = 16
    decoder_channels: int = 32
    stem: bool = True
    reference: bool = False
    # Defaults are what checkpoints written before these options mean; train/config.py
    # sets what new training uses.
    fine: bool = False
    mask_pooling: bool = False
    class_maps: bool = False
    context: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LocalizerSpec:
        data = dict(data)
        for key in ("grid", "image_size", "taps", "class_names", "prompts"):
            data[key] = tuple(data[key])
        return cls(**data)


class LocalizationOutput(NamedTuple):
    mask_logits: Tensor  # (N, 1, H, W) defect logit per pixel
    image_logit: Tensor  # (N,) defect logit of the image
    class_logits: Tensor  # (N, C) logits over spec.class_names
    class_map: Tensor | None = None  # (N, C, H/4, W/4) class logits per cell (class_maps), for training


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation), nn.GroupNorm(1, cout), nn.GELU()
    )


class DefectLocalizer(nn.Module):
    """Localization head over multi-depth vision features (see the module docstring)."""

    def __init__(self, spec: LocalizerSpec, prompt_text_embeddings: Tensor) -> None:
        super().__init__()
        if prompt_text_embeddings.shape != (len(spec.prompts), spec.text_hidden_size):
            raise ValueError(
                f"prompt embeddings have shape {tuple(prompt_text_embeddings.shape)}, "
                f"expected ({len(spec.prompts)}, {spec.text_hidden_size})"
            )
        self.spec = spec
        taps, p = len(spec.taps), spec.proj_dim
        n_prompts = len(spec.prompts)
        # The backbone's text embeddings are fixed (a buffer); what is learned is the
        # projection into the patch space plus a per-prompt correction.
        self.register_buffer("prompt_text", prompt_text_embeddings.detach().float().clone())
        self.text_proj = nn.Linear(spec.text_hidden_size, p)
        self.prompt_delta = nn.Parameter(torch.zeros(n_prompts, p))
        self.patch_proj = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(spec.vision_hidden_size), nn.Linear(spec.vision_hidden_size, p))
            for _ in spec.taps
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.squeeze = nn.Linear(taps * p, spec.feature_channels)
        in_ch = taps * n_prompts + (taps if spec.reference else 0) + spec.feature_channels
        c = spec.decoder_channels
        if spec.fine and not spec.stem:
            raise ValueError("the fine (H/2) decoder stage needs the image stem (stem: true)")
        self.patch_decoder = nn.Sequential(_conv(in_ch, c), _conv(c, c))
        # Two stages kept apart so the fine path can reuse the H/2 features.
        self.stem = nn.Sequential(_conv(3, c // 2, stride=2), _conv(c // 2, c, stride=2)) if spec.stem else None
        fuse_in = 2 * c if spec.stem else c
        # `context`: the second H/4 conv dilated (x3): the same cost, a receptive field three
        # times wider, so a faint stain is judged against the surface around it.
        self.fuse = nn.Sequential(_conv(fuse_in, c), _conv(c, c, dilation=3 if spec.context else 1), nn.Conv2d(c, 1, 1))
        # The H/2 stage is kept narrow (c/4 channels, no norm): at 4x the pixels of H/4 its
        # cost would otherwise dominate the whole graph on a CPU.
        self.refine_in = nn.Conv2d(c, c // 4, 1) if spec.fine else None
        # Its input: G narrowed, the H/2 stem features and the coarse logits as a channel (not
        # added to the output: a confident H/4 blob would then outvote the thin structure).
        self.refine = (
            nn.Sequential(
                nn.Conv2d(c // 4 + c // 2 + 1, c // 4, 3, padding=1), nn.GELU(), nn.Conv2d(c // 4, 1, 3, padding=1)
            )
            if spec.fine
            else None
        )
        # mask pooling adds G and the H/4 stem features under the mask, the image's colour
        # there relative to the whole image (3), and the mask's area share (1).
        pooled = 2 * c + (2 * c + 4 if spec.mask_pooling else 0)
        self.image_head = nn.Sequential(nn.Linear(pooled + 1, c), nn.GELU(), nn.Linear(c, 1))
        n_classes = max(len(spec.class_names), 1)
        self.class_head = (
            nn.Sequential(nn.Linear(pooled, c), nn.GELU(), nn.Linear(c, n_classes))
            if spec.mask_pooling
            else nn.Linear(pooled, n_classes)
        )
        if spec.class_maps and not spec.stem:
            raise ValueError("class maps need the image stem (stem: true)")
        self.class_pixels = (
            nn.Sequential(nn.Conv2d(2 * c, c, 1), nn.GELU(), nn.Conv2d(c, n_classes, 1)) if spec.class_maps else None
        )
        for tap in range(taps):
            self.register_buffer(f"reference_bank_{tap}", torch.zeros(0, spec.vision_hidden_size), persistent=True)

    # -- reference (1-shot) -------------------------------------------------------------
    def set_reference(self, layer_features: Sequence[Tensor]) -> None:
        """Store a normal reference image's tap features ((1 or M, gh*gw, D) each) in the module.

        The bank is a buffer, so it is saved in checkpoints and becomes a constant of the
        exported graph.
        """
        for tap, feats in enumerate(layer_features):
            setattr(self, f"reference_bank_{tap}", feats.detach().reshape(-1, feats.shape[-1]).float().clone())

    def has_reference(self) -> bool:
        return self.reference_bank_0.shape[0] > 0

    def prompt_embeddings(self) -> Tensor:
        """(P, proj_dim) unit-norm prompt embeddings."""
        return F.normalize(self.text_proj(self.prompt_text) + self.prompt_delta, dim=-1)

    # -- forward ------------------------------------------------------------------------
    def forward(
        self, layer_features: Sequence[Tensor], pixel_values: Tensor, reference_features: Sequence[Tensor] | None = None
    ) -> LocalizationOutput:
        """layer_features: one (N, gh*gw, D) tensor per tap; pixel_values (N,3,H,W) normalised.

        reference_features: per tap (M, gh*gw, D) or (M*gh*gw, D) of normal reference
        image(s); if None, the stored bank is used (zeros channel when there is none).
        """
        spec = self.spec
        gh, gw = spec.grid
        n = pixel_values.shape[0]
        prompts = self.prompt_embeddings()
        scale = self.logit_scale.exp().clamp(max=100.0)
        sims, refs, projected = [], [], []
        for tap, feats in enumerate(layer_features):
            proj = F.normalize(self.patch_proj[tap](feats.float()), dim=-1)  # (N, L, P)
            projected.append(proj)
            sims.append(scale * proj @ prompts.t())  # (N, L, prompts)
            if spec.reference:
                refs.append(self._reference_distance(tap, proj, reference_features))
        channels = sims + refs + [self.squeeze(torch.cat(projected, dim=-1))]
        patch_maps = torch.cat(channels, dim=-1).transpose(1, 2).reshape(n, -1, gh, gw)
        feat = self.patch_decoder(patch_maps)  # (N, c, gh, gw)
        height, width = spec.image_size
        if self.stem is not None:
            half = self.stem[0](pixel_values.float())  # (N, c/2, H/2, W/2)
            edge = self.stem[1](half)  # (N, c, H/4, W/4)
            up = F.interpolate(feat, size=(edge.shape[-2], edge.shape[-1]), mode="bilinear", align_corners=False)
            fused = self.fuse[:2](torch.cat([up, edge], dim=1))  # G: (N, c, H/4, W/4)
        else:
            fused = self.fuse[:2](feat)
        coarse = self.fuse[2](fused)  # mask logits at G's resolution
        low = coarse
        if self.refine is not None:
            size = (half.shape[-2], half.shape[-1])
            up = F.interpolate(self.refine_in(fused), size=size, mode="bilinear", align_corners=False)
            coarse_up = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
            low = self.refine(torch.cat([up, half, coarse_up], dim=1))
        mask_logits = F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)
        pooled = [feat.mean(dim=(2, 3)), feat.amax(dim=(2, 3))]
        if spec.mask_pooling:
            pooled += self._under_mask(coarse, fused, edge if self.stem is not None else fused, pixel_values)
        pooled = torch.cat(pooled, dim=1)
        peak = low.flatten(1).amax(dim=1, keepdim=True)
        image_logit = self.image_head(torch.cat([pooled, peak], dim=1)).squeeze(1)
        class_logits = self.class_head(pooled)
        class_map = None
        if self.class_pixels is not None:
            class_map = self.class_pixels(torch.cat([fused, edge], dim=1))  # (N, C, H/4, W/4)
            weight = torch.sigmoid(coarse)
            class_logits = class_logits + (class_map * weight).sum(dim=(2, 3)) / (weight.sum(dim=(2, 3)) + 1e-3)
        return LocalizationOutput(mask_logits, image_logit, class_logits, class_map)

    @staticmethod
    def _under_mask(coarse: Tensor, fused: Tensor, edge: Tensor, pixel_values: Tensor) -> list[Tensor]:
        """What the defect looks like: features averaged under the predicted mask (weights from
        the H/4 map), its colour against the whole image's, and how much of the image it covers."""
        weight = torch.sigmoid(coarse)  # (N, 1, H/4, W/4)
        total = weight.sum(dim=(2, 3)) + 1e-3
        pixels = F.adaptive_avg_pool2d(pixel_values.float(), (weight.shape[-2], weight.shape[-1]))
        colour = (pixels * weight).sum(dim=(2, 3)) / total - pixels.mean(dim=(2, 3))
        return [
            (fused * weight).sum(dim=(2, 3)) / total,
            (edge * weight).sum(dim=(2, 3)) / total,
            colour,
            weight.mean(dim=(2, 3)),
        ]

    def _reference_distance(self, tap: int, proj: Tensor, reference_features: Sequence[Tensor] | None) -> Tensor:
        if reference_features is not None:
            bank = reference_features[tap].reshape(-1, reference_features[tap].shape[-1]).float()
        else:
            bank = getattr(self, f"reference_bank_{tap}")
        if bank.shape[0] == 0:
            return torch.zeros_like(proj[..., :1])
        ref = F.normalize(self.patch_proj[tap](bank), dim=-1)  # (M, P)
        return 1.0 - (proj @ ref.t()).amax(dim=-1, keepdim=True)


def build_localizer(backbone, taps: Sequence[int], class_names: Sequence[str], **options) -> DefectLocalizer:
    """Build a localizer for `backbone` (an EiadBackbone), prompts embedded by its own text side."""
    prompts = tuple(default_prompts(class_names))
    spec = LocalizerSpec(
        vision_hidden_size=backbone.vision_hidden_size,
        text_hidden_size=backbone.text_hidden_size,
        grid=tuple(backbone.patch_grid()),
        image_size=(backbone.spec.height, backbone.spec.width),
        taps=tuple(int(t) for t in taps),
        class_names=tuple(class_names),
        prompts=prompts,
        **options,
    )
    with torch.no_grad():
        text = backbone.embed_text(list(prompts)).float().cpu()
    return DefectLocalizer(spec, text)


def resolve_taps(taps: Sequence[int], num_vision_layers: int) -> tuple[int, ...]:
    """Map tap indices to the backbone's 0-based layer indices 0..L-1 (-1 = the last layer)."""
    resolved = []
    for tap in taps:
        index = num_vision_layers + tap if tap < 0 else tap
        if not 0 <= index < num_vision_layers:
            raise ValueError(
                f"tap {tap} is outside the vision tower's layers 0..{num_vision_layers - 1} (or "
                f"-1..-{num_vision_layers})"
            )
        resolved.append(index)
    return tuple(resolved)
