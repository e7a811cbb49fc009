"""A memory bank of normal patch features: anomaly maps from good parts alone.

A line on its first day has good parts and few or no defect samples. PatchCore (Roth et
al., CVPR 2022) showed what works then: keep the vision tower's patch features of good
images in a memory bank, and score each patch of a new image by its distance to the
nearest bank entry. This module does that on the same vision pass as the localization
module and the explainer, so it is a constant of the exported graph, not a new runtime:

    tap features (N, gh*gw, D) each --3x3 average over the patch grid (local context)
        --concat--> (N, L, k*D) --[optional fixed projection to `dim`]--> unit-length z
    distance d = min over the bank of ||z - b||  (N, L)     bank: (M, dim), coreset of
        --(d - centre) / spread, sigmoid--> patch probabilities   the training patches
        --bilinear to the image size, Gaussian blur--> anomaly map (N, 1, H, W)
    image score = sigmoid((max of the map's logits - image_centre) / image_spread)

`centre` and `spread` are calibrated on good calibration images (`calibrate_scale`): a
patch as unusual as the good parts' 99.9th percentile scores 0.5. The image score has a
scale of its own (`calibrate_image_scale`): one good image in a few has a patch past that
99.9th percentile, so the map's maximum alone would put a good part's score near 0.5 and,
fused with the module's score by a max, bury the module's ranking under the bank's noise.
The image score's 0.5 is instead the strangest good calibration image's peak, and the
median good image scores 0.01. Fitting the bank needs torch only; the distances are a
matmul and a min, which ONNX and TensorRT run as is.

The coreset (greedy k-center on a random projection, as PatchCore does) keeps `size`
patches that cover the training patches best: the bank stays small enough for the edge
(size x dim x 4 bytes) with little loss of coverage.

Thread safety: a built module is read-only in forward; `fit` and `calibrate_scale` mutate it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NormalBankSpec:
    """Everything needed to rebuild a `NormalBank` (stored in every checkpoint that has one)."""

    taps: tuple[int, ...]  # 0-based vision layers, resolved
    feature_dim: int  # k * D: concatenated tap width
    dim: int  # bank width after the projection (== feature_dim: no projection)
    size: int  # bank entries
    grid: tuple[int, int]
    image_size: tuple[int, int]
    blur_sigma_px: float = 4.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NormalBankSpec:
        data = dict(data)
        for key in ("taps", "grid", "image_size"):
            data[key] = tuple(data[key])
        return cls(**data)


def gaussian_kernel(sigma_px: float) -> Tensor:
    """(1, 1, 1, k) normalised 1-D Gaussian, k = 2 * ceil(2 sigma) + 1 (as PatchCore smooths its
    maps); applied along rows then columns: a 2-D blur at 2k instead of k^2 multiplies per pixel."""
    radius = max(1, math.ceil(2 * sigma_px))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(x**2) / (2 * sigma_px**2))
    return (g / g.sum())[None, None, None, :]


class NormalBank(nn.Module):
    """Nearest-neighbour anomaly map over a coreset of good patches (see the module docstring)."""

    def __init__(self, spec: NormalBankSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("projection", torch.eye(spec.feature_dim, spec.dim))
        self.register_buffer("bank", torch.zeros(spec.size, spec.dim))
        self.register_buffer("centre", torch.tensor(0.0))
        self.register_buffer("spread", torch.tensor(1.0))
        # The image score's own scale, in the map's logit units (0 and 1: the map's maximum as is).
        self.register_buffer("image_centre", torch.tensor(0.0))
        self.register_buffer("image_spread", torch.tensor(1.0))
        self.register_buffer(
            "blur", gaussian_kernel(spec.blur_sigma_px) if spec.blur_sigma_px > 0 else torch.ones(1, 1, 1, 1)
        )

    def embed(self, layer_features: Sequence[Tensor]) -> Tensor:
        """(N, L, dim) unit-length patch embeddings with 3x3 local context."""
        gh, gw = self.spec.grid
        parts = []
        for feats in layer_features:
            n, length, d = feats.shape
            grid = feats.float().transpose(1, 2).reshape(n, d, gh, gw)
            grid = F.avg_pool2d(grid, 3, stride=1, padding=1, count_include_pad=False)
            parts.append(F.normalize(grid.reshape(n, d, length).transpose(1, 2), dim=-1))
        z = torch.cat(parts, dim=-1) @ self.projection
        return F.normalize(z, dim=-1)

    def distances(self, layer_features: Sequence[Tensor]) -> Tensor:
        """(N, L) distance of each patch to its nearest bank entry."""
        z = self.embed(layer_features)
        # ||z - b||^2 = 2 - 2 z.b for unit vectors: one matmul, then the max similarity.
        nearest = (z @ self.bank.t()).amax(dim=-1)
        return torch.sqrt(torch.clamp(2.0 - 2.0 * nearest, min=0.0))

    def forward(self, layer_features: Sequence[Tensor]) -> Tensor:
        """(N, 1, H, W) anomaly map logits: (blurred distance - centre) / spread."""
        gh, gw = self.spec.grid
        n = layer_features[0].shape[0]
        d = self.distances(layer_features).reshape(n, 1, gh, gw)
        d = F.interpolate(d, size=self.spec.image_size, mode="bilinear", align_corners=False)
        pad = self.blur.shape[-1] // 2
        d = F.conv2d(F.pad(d, (pad, pad, 0, 0), mode="replicate"), self.blur)  # along rows
        d = F.conv2d(F.pad(d, (0, 0, pad, pad), mode="replicate"), self.blur.transpose(-1, -2))  # along columns
        return (d - self.centre) / self.spread

    def image_score(self, map_logits: Tensor) -> Tensor:
        """(N,) defect probability per image from `forward`'s (N, 1, H, W) map logits."""
        return torch.sigmoid((map_logits.flatten(1).amax(dim=1) - self.image_centre) / self.image_spread)

    # -- fitting (not part of the exported graph) --------------------------------------
    @torch.no_grad()
    def fit(self, patches: Tensor, seed: int = 0) -> None:
        """Fill the bank from (P, dim) training patch embeddings (already `embed`-ded) by coreset."""
        chosen = greedy_coreset(patches, self.spec.size, seed)
        self.bank = patches[chosen].clone()
        self.spec = replace(self.spec, size=len(chosen))  # fewer patches than asked: the bank is all of them
        log.info("normal bank: %d of %d good patches kept (coreset)", len(chosen), patches.shape[0])

    @torch.no_grad()
    def calibrate_scale(self, good_distances: Tensor, quantile: float = 0.999) -> None:
        """Centre at the good patches' `quantile` distance, spread = its distance from the median."""
        flat = good_distances.flatten().float()
        top = torch.quantile(flat, quantile)
        mid = torch.quantile(flat, 0.5)
        self.centre = top.clone()
        self.spread = torch.clamp((top - mid) / 4.0, min=1e-6)

    @torch.no_grad()
    def calibrate_image_scale(self, good_peaks: Tensor) -> None:
        """From the good calibration images' peak map logits: the strangest scores 0.5, the
        median 0.01 (logit -4.6)."""
        peaks = good_peaks.flatten().float()
        top, mid = peaks.max(), torch.quantile(peaks, 0.5)
        self.image_centre = top.clone()
        self.image_spread = torch.clamp((top - mid) / math.log(99.0), min=1e-6)


def random_projection(feature_dim: int, dim: int, seed: int = 0) -> Tensor:
    """(feature_dim, dim) Gaussian projection (Johnson-Lindenstrauss): keeps distances, fixed by seed."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(feature_dim, dim, generator=generator) / math.sqrt(dim)


@torch.no_grad()
def greedy_coreset(points: Tensor, size: int, seed: int = 0, sketch_dim: int = 128) -> Tensor:
    """Indices of `size` points chosen by greedy k-center (each pick: the point farthest from
    those already chosen), on a random projection to `sketch_dim` for speed. All points when
    there are no more than `size`."""
    count = points.shape[0]
    if count <= size:
        return torch.arange(count)
    sketch = (
        points @ random_projection(points.shape[1], min(sketch_dim, points.shape[1]), seed)
        if points.shape[1] > sketch_dim
        else points
    )
    generator = torch.Generator().manual_seed(seed)
    first = int(torch.randint(count, (1,), generator=generator))
    chosen = [first]
    nearest = torch.cdist(sketch, sketch[first : first + 1]).squeeze(1)
    for _ in range(size - 1):
        pick = int(torch.argmax(nearest))
        chosen.append(pick)
        nearest = torch.minimum(nearest, torch.cdist(sketch, sketch[pick : pick + 1]).squeeze(1))
    return torch.tensor(chosen)
