"""Localization losses: hand-computed values and behaviour."""

import math

import pytest
import torch

from eiad.modeling.losses import LossWeights, dice_loss, focal_loss, localization_loss


def test_focal_loss_matches_hand_value_and_reduces_to_bce_at_gamma_zero():
    logits = torch.tensor([0.0, 2.0])
    target = torch.tensor([1.0, 0.0])
    # gamma 0, alpha .5: 0.5 * mean BCE
    bce = (math.log(2) + math.log(1 + math.e**2)) / 2
    assert focal_loss(logits, target, alpha=0.5, gamma=0.0).item() == pytest.approx(0.5 * bce, rel=1e-5)
    # gamma 2 on the first element: p_t = .5 -> factor .25 * alpha .75
    one = focal_loss(logits[:1], target[:1], alpha=0.75, gamma=2.0).item()
    assert one == pytest.approx(0.75 * 0.25 * math.log(2), rel=1e-5)


def test_dice_loss_is_zero_for_confident_match_and_near_one_for_miss():
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :2] = 1
    good = (target * 2 - 1) * 20
    assert dice_loss(good, target).item() < 1e-3
    assert dice_loss(-good, target).item() > 0.75


def test_class_loss_only_counts_defective_images():
    n = 2
    masks = torch.zeros(n, 1, 4, 4)
    class_logits = torch.tensor([[5.0, -5.0], [-5.0, 5.0]], requires_grad=True)
    total, parts = localization_loss(
        torch.zeros(n, 1, 4, 4),
        torch.zeros(n),
        class_logits,
        masks,
        torch.tensor([0.0, 1.0]),
        torch.tensor([-1, 1]),
        LossWeights(),
    )
    assert parts["cls"] == pytest.approx(math.log(1 + math.exp(-10)), abs=1e-6)  # only image 1, classed right
    total.backward()
    assert class_logits.grad[0].abs().sum() == 0  # the OK image gets no class gradient


def test_all_ok_batch_keeps_a_zero_class_loss():
    total, parts = localization_loss(
        torch.zeros(1, 1, 2, 2),
        torch.zeros(1),
        torch.zeros(1, 3, requires_grad=True),
        torch.zeros(1, 1, 2, 2),
        torch.zeros(1),
        torch.tensor([-1]),
    )
    assert parts["cls"] == 0.0 and torch.isfinite(total)
