"""EiadVisionEngine: the one graph that is exported (ONNX/TensorRT) and run on the line.

camera pixels uint8 NHWC BGR at the spec size -> RGB, /255, (x - mean)/std -> vision tower
(taps + LLM tokens) -> localization module and/or normal bank -> probabilities. Preprocessing lives here and
only here: training calls `preprocess` too, so train, export and edge cannot disagree.
The resize to the spec size (spec.resize, "stretch") is the one step done outside, by
whoever owns the camera image (cv2.resize, INTER_LINEAR).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from eiad import manifest
from eiad.modeling.localization import DefectLocalizer, LocalizationOutput
from eiad.modeling.normal_bank import NormalBank


class VisionEngineOutput(NamedTuple):
    anomaly_map: Tensor  # (N, 1, H, W) defect probability per pixel
    image_score: Tensor  # (N,) defect probability of the image
    class_probs: Tensor  # (N, C) softmax over class names
    vision_features: Tensor  # (N, T, D) tokens the explainer (LLM) consumes


class EngineHalves(NamedTuple):
    """What `EiadVisionEngine.forward` fuses (see `halves`)."""

    module: LocalizationOutput | None  # the localization module's raw logits
    bank_map: Tensor | None  # (N, 1, H, W) the normal bank's defect probability per pixel
    bank_score: Tensor | None  # (N,) the normal bank's defect probability per image
    tokens: Tensor  # (N, T, D) vision features for the explainer


# The exported tensor names are the NamedTuple's field names; keep them equal to the manifest's.
if VisionEngineOutput._fields != (
    manifest.ANOMALY_MAP,
    manifest.IMAGE_SCORE,
    manifest.CLASS_PROBS,
    manifest.VISION_FEATURES,
):
    raise ImportError("VisionEngineOutput fields must match the output names in eiad/manifest.py")


class Preprocess(nn.Module):
    """uint8 (N,H,W,3) in `input_order` -> float (N,3,H,W) normalised in the model's channel order."""

    def __init__(self, spec, input_order: str = "BGR") -> None:
        super().__init__()
        self.flip = input_order != spec.channel_order
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0))

    def forward(self, image: Tensor) -> Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32)
        if self.flip:
            x = torch.flip(x, dims=[1])
        # (x/255 - mean)/std folded into one multiply-add: the same numbers, fewer ops.
        return (x - self.mean) * self.inv_std


class EiadVisionEngine(nn.Module):
    """Backbone vision pass + localization module and/or normal bank, camera pixels in,
    probabilities out.

    Three shapes, one graph each:
    - supervised (`localizer` only): the module's map, score and class probabilities;
    - bank only: the bank's map and image score, one class column of 1 (class names are
      empty: "unknown");
    - fused (both; what `--normal-only` and `normal_bank: true` train): per pixel the larger
      of the two maps, the larger of the two image scores, the module's classes. Each is a
      calibrated probability (the bank's pixel 0.5 is the good calibration patches' 99.9th
      percentile, its image 0.5 the strangest good calibration image's peak), so the bank
      only speaks where a part is stranger than the good ones were, and the module keeps
      what it learned.
    """

    def __init__(self, backbone, localizer: DefectLocalizer | None, bank: NormalBank | None = None) -> None:
        super().__init__()
        if localizer is None and bank is None:
            raise ValueError("a vision engine needs a localization module, a normal bank, or both")
        self.backbone = backbone
        self.localizer = localizer
        self.bank = bank
        wanted = set(localizer.spec.taps if localizer is not None else ()) | set(
            bank.spec.taps if bank is not None else ()
        )
        self.taps = tuple(sorted(wanted))
        self._localizer_taps = [self.taps.index(t) for t in localizer.spec.taps] if localizer is not None else []
        self._bank_taps = [self.taps.index(t) for t in bank.spec.taps] if bank is not None else []
        self.preprocess = Preprocess(backbone.spec)
        self.height, self.width = backbone.spec.height, backbone.spec.width

    def forward_logits(self, image: Tensor) -> tuple[LocalizationOutput, Tensor]:
        """Raw localization-module logits and the LLM vision tokens (what supervised training uses)."""
        if self.localizer is None:
            raise ValueError("this engine has no localization module (normal-only): nothing to train")
        pixels = self.preprocess(image)
        feats = self.backbone.forward_vision(pixels, self.taps)
        return self.localizer([feats.layer_features[i] for i in self._localizer_taps], pixels), feats.tokens

    def halves(self, image: Tensor) -> EngineHalves:
        """The two halves before `forward` fuses them: the localization module's raw output and
        the normal bank's probability map (None for a half this engine lacks), on one vision pass."""
        pixels = self.preprocess(image)
        feats = self.backbone.forward_vision(pixels, self.taps)
        normal = normal_score = None
        if self.bank is not None:
            logits = self.bank([feats.layer_features[i] for i in self._bank_taps])
            normal, normal_score = torch.sigmoid(logits), self.bank.image_score(logits)
        module = None
        if self.localizer is not None:
            module = self.localizer([feats.layer_features[i] for i in self._localizer_taps], pixels)
        return EngineHalves(module, normal, normal_score, feats.tokens.float())

    def forward(self, image: Tensor) -> VisionEngineOutput:
        out, normal, normal_score, tokens = self.halves(image)
        if out is None:
            return VisionEngineOutput(
                anomaly_map=normal,
                image_score=normal_score,
                class_probs=torch.ones_like(normal[:, 0, 0, :1]),
                vision_features=tokens,
            )
        anomaly, score = torch.sigmoid(out.mask_logits), torch.sigmoid(out.image_logit)
        if normal is not None:
            anomaly = torch.maximum(anomaly, normal)
            score = torch.maximum(score, normal_score)
        return VisionEngineOutput(
            anomaly_map=anomaly,
            image_score=score,
            class_probs=torch.softmax(out.class_logits, dim=-1),
            vision_features=tokens,
        )


def export_onnx(engine: EiadVisionEngine, path, batch: int = 2, opset: int | None = None) -> None:
    """Export with the dynamo exporter, batch axis dynamic.

    The example batch is >= 2 on purpose: with a batch-1 example the exporter can bake
    the batch size into the graph.
    """
    example = torch.zeros(max(batch, 2), engine.height, engine.width, 3, dtype=torch.uint8)
    batch_dim = torch.export.Dim("batch", min=1, max=64)
    kwargs = {"opset_version": opset} if opset else {}
    engine.eval()
    with torch.no_grad():
        torch.onnx.export(
            engine,
            (example,),
            str(path),
            dynamo=True,
            input_names=["image"],
            output_names=list(VisionEngineOutput._fields),
            dynamic_shapes={"image": {0: batch_dim}},
            **kwargs,
        )
