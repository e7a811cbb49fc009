"""Training path 1: the localization module (pixel focal + dice, image BCE, class CE).

Its own optimiser (AdamW) and schedule; the LLM is never touched (its parameters stay
frozen and out of the optimiser). The vision tower is frozen unless `unfreeze_vision`
(meant for random-weight tiny presets). Runs under `accelerate launch` for multi-GPU DDP.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from eiad.errors import ModelError
from eiad.modeling.engine import EiadVisionEngine
from eiad.modeling.localization import build_localizer, resolve_taps
from eiad.modeling.losses import LossWeights, localization_loss
from eiad.split import load_split
from train.config import LocalizationConfig, TrainConfig
from train.eval.localization.quality import headline
from train.localization.data import (
    CameraJitter,
    EpochSampler,
    LocalizationDataset,
    data_fingerprint,
    first_normal,
    read_pair,
)
from train.localization.finish import calibrate_and_report, write_run_files
from train.localization.pseudo_defects import PseudoDefects
from train.localization.resume import restore_run, save_run
from train.optimization import lr_factor, mixed_precision, warmup_steps

log = logging.getLogger(__name__)


def vision_parameters(backbone, taps) -> dict[str, nn.Parameter]:
    """The backbone parameters the tapped features depend on (found by one probe backward).

    A probe instead of a name pattern: it works for every family, and leaves the layers
    after the deepest tap (and everything on the LLM side) frozen.
    """
    params = dict(backbone.named_parameters())
    for p in params.values():
        p.requires_grad_(True)
    spec = backbone.spec
    probe = torch.zeros(1, 3, spec.height, spec.width, device=next(backbone.parameters()).device)
    feats = backbone.forward_vision(probe, taps).layer_features
    sum(f.float().sum() for f in feats).backward()
    found = {name: p for name, p in params.items() if p.grad is not None}
    for p in params.values():
        p.grad = None
        p.requires_grad_(False)
    return found


@dataclass(frozen=True)
class RunResult:
    checkpoint: Path
    metrics: dict
    thresholds: dict
    steps: int
    wall_s: float


class _TrainStep(nn.Module):
    """What DDP wraps: camera pixels -> localization logits."""

    def __init__(self, engine: EiadVisionEngine) -> None:
        super().__init__()
        self.engine = engine

    def forward(self, image):
        return self.engine.forward_logits(image)[0]


def _weights(cfg: LocalizationConfig) -> LossWeights:
    return LossWeights(
        cfg.focal_weight,
        cfg.dice_weight,
        cfg.image_weight,
        cfg.class_weight,
        cfg.focal_alpha,
        cfg.focal_gamma,
        cfg.skeleton_weight,
        cfg.class_map_weight,
    )


def _load_backbone(config: TrainConfig, device):
    try:
        from eiad.modeling.backbone.loading import load_backbone
    except ImportError as error:  # pragma: no cover - until the backbone adapter is installed
        raise ModelError(f"the backbone adapter (eiad.modeling.backbone) is not available: {error}") from error
    return load_backbone(config.backbone, device=device)


def _set_reference(engine: EiadVisionEngine, split, device) -> None:
    entry = first_normal(split, "train")
    image, _ = read_pair(entry, engine.height, engine.width)
    with torch.no_grad():
        pixels = engine.preprocess(torch.from_numpy(image)[None].to(device))
        engine.localizer.set_reference(
            engine.backbone.forward_vision(pixels, engine.localizer.spec.taps).layer_features
        )


@dataclass
class _Run:
    """Everything one training run holds (mutable: the loop advances `state`)."""

    config: TrainConfig
    accelerator: object
    split: object
    engine: EiadVisionEngine
    vision: dict
    optimizer: object
    step_module: nn.Module
    loader: DataLoader
    train_set: LocalizationDataset
    sampler: EpochSampler
    total: int
    warmup: int
    meta: dict
    config_dump: dict
    last: Path
    state: dict


def train_localization(config: TrainConfig, *, backbone=None, resume: bool = False) -> RunResult:
    """Train, calibrate on the calibration split, report on the test split, and write the run to
    config.out_dir/localization."""
    if config.localization is None:
        raise ModelError("the config has no 'localization' section")
    run = _build(config, backbone)
    if resume and run.last.is_dir():
        run.state = restore_run(run.last, run.engine, run.vision, run.optimizer, run.accelerator.device)
        log.info("resumed from %s at step %d", run.last, run.state["step"])
    wall = _loop(run)
    if not run.accelerator.is_main_process:
        return RunResult(run.last, {}, {}, run.state["step"], wall)
    return _finish(
        config,
        run.engine,
        run.vision,
        run.optimizer,
        run.state,
        run.meta,
        run.config_dump,
        run.split,
        run.accelerator.device,
        wall,
    )


def _build(config: TrainConfig, backbone) -> _Run:
    """Backbone, module, frozen/unfrozen parameters, data, optimiser; wrapped by accelerate."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    cfg = config.localization
    accelerator = Accelerator(
        cpu=config.device == "cpu",
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=mixed_precision(cfg.precision, torch.cuda.is_available() and config.device != "cpu"),
    )
    set_seed(config.seed)
    device = accelerator.device
    split = load_split(config.split)
    backbone = backbone if backbone is not None else _load_backbone(config, device)
    backbone.to(device).eval()
    taps = resolve_taps(cfg.taps, backbone.num_vision_layers)
    classes = [] if cfg.normal_only else split.classes  # good images only: no class to learn
    localizer = build_localizer(
        backbone,
        taps,
        classes,
        proj_dim=cfg.proj_dim,
        feature_channels=cfg.feature_channels,
        decoder_channels=cfg.decoder_channels,
        stem=cfg.stem,
        reference=cfg.reference,
        fine=cfg.fine,
        mask_pooling=cfg.mask_pooling,
        class_maps=cfg.class_maps,
        context=cfg.context,
    )
    engine = EiadVisionEngine(backbone, localizer).to(device)
    for p in backbone.parameters():  # the LLM (and by default the tower) never trains here
        p.requires_grad_(False)
    vision = vision_parameters(backbone, taps) if cfg.unfreeze_vision else {}
    for p in vision.values():
        p.requires_grad_(True)
    if cfg.reference:
        _set_reference(engine, split, device)
    train_set = LocalizationDataset(
        split,
        "train",
        engine.height,
        engine.width,
        augment=True,
        hflip=cfg.hflip,
        vflip=cfg.vflip,
        seed=config.seed,
        camera=CameraJitter() if cfg.camera_jitter else None,
        only_good=cfg.normal_only,
        pseudo=PseudoDefects(cfg.pseudo_defect_probability, tuple(cfg.pseudo_defect_kinds))
        if cfg.normal_only
        else None,
    )
    defective = [bool(train_set.label(i)) for i in range(len(train_set))]
    sampler = EpochSampler(len(train_set), config.seed, defective, cfg.good_share)
    # Persistent workers keep their decoded-image cache from epoch to epoch; the epoch number
    # (which seeds the augmentation) reaches them through the sampler's indices.
    loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=len(train_set) > cfg.batch_size,
        persistent_workers=cfg.num_workers > 0,
    )
    groups = [{"params": list(localizer.parameters()), "lr": cfg.learning_rate, "base_lr": cfg.learning_rate}]
    if vision:
        groups.append(
            {"params": list(vision.values()), "lr": cfg.vision_learning_rate, "base_lr": cfg.vision_learning_rate}
        )
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    step_module, optimizer, loader = accelerator.prepare(_TrainStep(engine), optimizer, loader)
    total = min(max(1, len(loader) // cfg.gradient_accumulation_steps) * cfg.epochs, cfg.max_steps or 10**12)
    meta = {
        "backbone": config.backbone,
        "family": getattr(backbone, "family", ""),
        "preprocess": backbone.spec.to_dict(),
        "data_fingerprint": data_fingerprint(config.split),
        "split": str(config.split),
    }
    return _Run(
        config,
        accelerator,
        split,
        engine,
        vision,
        optimizer,
        step_module,
        loader,
        train_set,
        sampler,
        total,
        warmup_steps(total, cfg.warmup_ratio),
        meta,
        config.model_dump(mode="json"),
        Path(config.out_dir) / "localization" / "checkpoint",
        {"step": 0, "epoch": 0, "batch": 0, "history": []},
    )


def _loop(run: _Run) -> float:
    """The training loop; returns its wall time in seconds."""
    cfg, state, acc, optimizer = run.config.localization, run.state, run.accelerator, run.optimizer
    weights = _weights(cfg)
    started = time.perf_counter()
    bar = tqdm(
        total=run.total, initial=state["step"], desc="localization", unit="step", disable=not acc.is_main_process
    )
    done = state["step"] >= run.total
    while not done:
        run.sampler.start_epoch(state["epoch"])  # order and augmentation follow (seed, epoch): the same on resume
        tick, seen = time.perf_counter(), 0
        for b, batch in enumerate(run.loader):
            if b < state["batch"]:
                continue  # resuming mid-epoch: skip batches already trained on
            with acc.accumulate(run.step_module):
                out = run.step_module(batch["image"])
                loss, parts = localization_loss(
                    out.mask_logits,
                    out.image_logit,
                    out.class_logits,
                    batch["mask"],
                    batch["label"],
                    batch["class_index"],
                    weights,
                    batch["skeleton"],
                    out.class_map,
                )
                acc.backward(loss)
                seen += batch["image"].shape[0]
                if not acc.sync_gradients:
                    continue
                acc.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.max_grad_norm)
                factor = lr_factor(state["step"], run.total, run.warmup, cfg.lr_schedule, cfg.min_lr_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * factor
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            state["step"], state["batch"] = state["step"] + 1, b + 1
            value = float(loss.detach())
            state["history"].append({"step": state["step"], "loss": value, **parts, "lr": cfg.learning_rate * factor})
            rate = seen * acc.num_processes / max(time.perf_counter() - tick, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}", img_s=f"{rate:.1f}")
            over_time = cfg.time_budget_s is not None and time.perf_counter() - started > cfg.time_budget_s
            done = state["step"] >= run.total or over_time
            if acc.is_main_process and (done or state["step"] % cfg.checkpoint_every_steps == 0):
                save_run(run.last, run.engine, run.vision, optimizer, state, run.meta, run.config_dump)
            if done:
                break
        else:
            state["epoch"], state["batch"] = state["epoch"] + 1, 0
    bar.close()
    return time.perf_counter() - started


def _finish(config, engine, vision, optimizer, state, meta, config_dump, split, device, wall) -> RunResult:
    """The normal bank (if configured), thresholds on the calibration split, the report on the
    test split (train/localization/finish.py); saves checkpoint, curve, grid and metrics.json."""
    cfg = config.localization
    if cfg.reference and vision:
        _set_reference(engine, split, device)  # the tower moved: refresh the bank
    if cfg.normal_only or cfg.normal_bank:
        from train.localization.normal_bank_fit import fit_normal_bank

        bank = fit_normal_bank(engine, split, cfg, device, config.seed)
        engine = EiadVisionEngine(engine.backbone, engine.localizer, bank).to(device)
    thresholds, report, test_pred = calibrate_and_report(engine, split, cfg, device)
    metrics = dict(headline(report), steps=state["step"], train_wall_s=round(wall, 2))
    last = Path(config.out_dir) / "localization" / "checkpoint"
    save_run(last, engine, vision, optimizer, state, dict(meta, thresholds=thresholds, metrics=metrics), config_dump)
    write_run_files(last.parent, state["history"], thresholds, report, metrics, test_pred)
    return RunResult(last, metrics, thresholds, state["step"], wall)
