"""Fitting the normal bank (eiad/modeling/normal_bank.py) from a split's good images.

    bank = fit_normal_bank(engine, split, cfg, device)   # train good -> coreset; calibration good -> scales

The bank is filled from the training split's good images, through the engine's own
(possibly just trained) vision tower, so it reads exactly the features the edge will
compute. Its scale is set on the calibration split's good images: thresholds are a
calibration matter, never a test one.
"""

from __future__ import annotations

import logging

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from eiad.modeling.localization import resolve_taps
from eiad.modeling.normal_bank import NormalBank, NormalBankSpec, random_projection
from train.localization.data import LocalizationDataset

log = logging.getLogger(__name__)


@torch.no_grad()
def _tap_features(engine, dataset, taps, batch_size: int, device, what: str):
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc=what, unit="batch", leave=False):
        pixels = engine.preprocess(batch["image"].to(device))
        yield engine.backbone.forward_vision(pixels, taps).layer_features


@torch.no_grad()
def fit_normal_bank(engine, split, cfg, device, seed: int = 0) -> NormalBank:
    """A bank over `cfg.bank_taps` of the engine's tower: coreset of the train split's good
    patches, scale from the calibration split's good images."""
    backbone = engine.backbone
    taps = resolve_taps(cfg.bank_taps, backbone.num_vision_layers)
    feature_dim = len(taps) * backbone.vision_hidden_size
    dim = cfg.bank_dim or feature_dim
    spec = NormalBankSpec(
        taps=taps,
        feature_dim=feature_dim,
        dim=dim,
        size=cfg.bank_size,
        grid=tuple(backbone.patch_grid()),
        image_size=(engine.height, engine.width),
        blur_sigma_px=cfg.bank_blur_sigma_px,
    )
    bank = NormalBank(spec).to(device)
    if dim != feature_dim:
        bank.projection = random_projection(feature_dim, dim, seed).to(device)
    good_train = LocalizationDataset(split, "train", engine.height, engine.width, only_good=True)
    patches = torch.cat(
        [
            bank.embed(f).reshape(-1, dim)
            for f in _tap_features(engine, good_train, taps, cfg.batch_size, device, "bank: train")
        ]
    )
    bank.fit(patches, seed)
    good_cal = LocalizationDataset(split, "calibration", engine.height, engine.width, only_good=True)
    # One vision pass over the good calibration images serves both scales (their features are small).
    calibration = list(_tap_features(engine, good_cal, taps, cfg.batch_size, device, "bank: calibration"))
    bank.calibrate_scale(torch.cat([bank.distances(f) for f in calibration]))
    peaks = torch.cat([bank(f).flatten(1).amax(dim=1) for f in calibration])
    bank.calibrate_image_scale(peaks)
    log.info(
        "normal bank: %d x %d from %d good training images; scales from %d good calibration images "
        "(patch centre %.4f, spread %.4f; image centre %.3f, spread %.3f)",
        bank.bank.shape[0],
        dim,
        len(good_train),
        len(good_cal),
        float(bank.centre),
        float(bank.spread),
        float(bank.image_centre),
        float(bank.image_spread),
    )
    return bank
