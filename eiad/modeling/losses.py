"""Losses of the localization path: pixel focal + dice + skeleton recall, image-score BCE,
defect-class CE.

The dialog path has its own next-token loss (train/dialog*.py); nothing here touches it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LossWeights:
    focal: float = 2.0
    dice: float = 1.0
    image: float = 0.5
    cls: float = 1.0
    focal_alpha: float = 0.75  # weight of the (rare) defect pixels
    focal_gamma: float = 2.0
    skeleton: float = 0.0
    class_map: float = 0.0


def focal_loss(logits: Tensor, target: Tensor, alpha: float = 0.75, gamma: float = 2.0) -> Tensor:
    """Mean binary focal loss (Lin et al.); `alpha` weighs positives, `1 - alpha` negatives."""
    target = target.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    prob = torch.sigmoid(logits)
    p_t = prob * target + (1 - prob) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * (1 - p_t) ** gamma * ce).mean()


def dice_loss(logits: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    """1 - soft Dice per image, averaged. `eps` smooths it so an OK image whose prediction is
    empty scores ~0 loss instead of 0/0."""
    prob = torch.sigmoid(logits).flatten(1)
    target = target.to(prob.dtype).flatten(1)
    inter = (prob * target).sum(dim=1)
    total = prob.sum(dim=1) + target.sum(dim=1)
    return (1 - (2 * inter + eps) / (total + eps)).mean()


def skeleton_recall_loss(logits: Tensor, skeleton: Tensor) -> Tensor:
    """Mean over images with a skeleton of -log p on its pixels (the defect's centre lines).

    Focal + dice are pixel-area losses: a 1-2 px crack is a few hundred pixels next to a
    stain's thousands, and missing half of it costs little. Every centre-line pixel weighs
    the same here, whatever the region's width, so a map that finds a thin defect along its
    whole length is rewarded (in the spirit of Kirchhoff et al.'s skeleton recall loss,
    ECCV 2024). A perfect-recall map costs 0; it never penalises false positives (focal does).
    """
    skeleton = skeleton.to(logits.dtype).flatten(1)
    per_pixel = F.softplus(-logits.flatten(1))  # -log sigmoid(logit)
    count = skeleton.sum(dim=1)
    has = count > 0
    if not bool(has.any()):
        return logits.sum() * 0.0
    return ((per_pixel * skeleton).sum(dim=1)[has] / count[has]).mean()


def class_map_loss(class_map: Tensor, masks: Tensor, class_index: Tensor) -> Tensor:
    """Cross-entropy of every defect cell's class logits against its image's class.

    A cell (class_map's resolution) is a defect cell when any pixel of the true mask in it is
    a defect (max-pooled, so a 1-px crack keeps its cells). Images without a known class
    (good parts) contribute nothing.
    """
    known = class_index >= 0
    if not bool(known.any()):
        return class_map.sum() * 0.0
    cells = F.adaptive_max_pool2d(masks[known].float(), class_map.shape[-2:])[:, 0] > 0.5  # (K, h, w)
    logits = class_map[known].permute(0, 2, 3, 1)[cells]  # (cells, C)
    if logits.shape[0] == 0:
        return class_map.sum() * 0.0
    target = class_index[known][:, None, None].expand_as(cells)[cells]
    return F.cross_entropy(logits.float(), target)


def localization_loss(
    mask_logits: Tensor,
    image_logit: Tensor,
    class_logits: Tensor,
    masks: Tensor,
    labels: Tensor,
    class_index: Tensor,
    weights: LossWeights = LossWeights(),
    skeleton: Tensor | None = None,
    class_map: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Total loss and its parts (floats, for logging).

    masks (N,1,H,W) in {0,1}; labels (N,) 1 = NG; class_index (N,) long, -1 for OK images
    (class CE only counts defective images with a known class); skeleton (N,1,H,W) in
    {0,1}, the masks' centre lines (needed when weights.skeleton > 0).
    """
    mask_logits = mask_logits.float()
    focal = focal_loss(mask_logits, masks, weights.focal_alpha, weights.focal_gamma)
    dice = dice_loss(mask_logits, masks)
    image = F.binary_cross_entropy_with_logits(image_logit.float(), labels.float())
    known = class_index >= 0
    if bool(known.any()):
        cls = F.cross_entropy(class_logits.float()[known], class_index[known])
    else:
        cls = class_logits.float().sum() * 0.0  # keeps the graph whole for DDP
    total = weights.focal * focal + weights.dice * dice + weights.image * image + weights.cls * cls
    parts = {
        "focal": float(focal.detach()),
        "dice": float(dice.detach()),
        "image": float(image.detach()),
        "cls": float(cls.detach()),
    }
    if weights.skeleton > 0:
        if skeleton is None:
            raise ValueError("the skeleton loss weight is > 0 but no skeleton was given")
        skel = skeleton_recall_loss(mask_logits, skeleton)
        total = total + weights.skeleton * skel
        parts["skeleton"] = float(skel.detach())
    if weights.class_map > 0 and class_map is not None:
        dense = class_map_loss(class_map, masks, class_index)
        total = total + weights.class_map * dense
        parts["class_map"] = float(dense.detach())
    return total, parts
