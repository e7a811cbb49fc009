"""Dialog path: LoRA on the language side, next-token loss on DDQA answers only.

Independent of the localization path: its own optimiser over LoRA parameters only; the
vision tower (shared with the localization module) and everything else stay frozen, so
dialog training cannot move the features the mask is computed from. Runs under
`accelerate launch` / `torchrun` (DDP) or DeepSpeed ZeRO-2 through `Accelerator`,
single-process on CPU. Outputs: `adapter/` in peft's format, `dialog_config.json`,
`dialog_report.json`, `metrics.json`, `loss_curve.png`, and `checkpoint/` for --resume.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from eiad.dialog_records import DialogRecord
from eiad.errors import ModelError
from eiad.modeling.backbone.base import EiadBackbone
from eiad.modeling.backbone.loading import load_backbone
from train.dialog.checkpoint import (
    DialogState,
    EpochOrder,
    load_dialog_checkpoint,
    save_dialog_checkpoint,
    save_dialog_curve,
)
from train.dialog.config import DialogConfig
from train.dialog.records import read_records
from train.optimization import lr_factor, mixed_precision, warmup_steps

log = logging.getLogger(__name__)

# Called after each optimiser step with (step, mean train loss of that step).
StepHook = Callable[[int, float], None]


@dataclass(frozen=True)
class DialogReport:
    """What one dialog run did. Losses are mean NLL per answer token (nats) on held-out records."""

    steps: int
    train_records: int
    eval_records: int
    eval_split: str
    loss_before: float
    loss_after: float
    wall_time_s: float
    trainable_params: int
    adapter_dir: str
    resumed_from_step: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def attach_lora(backbone: EiadBackbone, config: DialogConfig):
    """Wrap `backbone.hf_model` in a PeftModel; only LoRA weights are trainable."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_regex or backbone.lora_target_regex,
        bias="none",
    )
    model = get_peft_model(backbone.hf_model, lora)
    for name, param in model.named_parameters():
        param.requires_grad = "lora_" in name
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return model


@torch.no_grad()
def evaluate_answer_loss(
    model: torch.nn.Module, backbone: EiadBackbone, records: Sequence[DialogRecord], batch_size: int = 1
) -> float:
    """Mean next-token NLL (nats) over answer tokens only, token-weighted across records."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        batch = backbone.chat_inputs(
            [r.load_image() for r in chunk], [r.question for r in chunk], [r.answer for r in chunk]
        )
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        logits = model(**batch).logits.float()
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += float(nll)
        count += int((labels[:, 1:] != -100).sum())
    model.train(was_training)
    if count == 0:
        raise ModelError("evaluate_answer_loss: no answer tokens in the given records")
    return total / count


def train_dialog(
    config: DialogConfig,
    backbone_dir: Path,
    ddqa_train: Path,
    ddqa_test: Path | None,
    out_dir: Path,
    *,
    resume: bool = False,
    on_step: StepHook | None = None,
    vision_from: Path | None = None,
    extra_train: Sequence[DialogRecord] = (),
    extra_eval: Sequence[DialogRecord] = (),
) -> DialogReport:
    """Fine-tune LoRA adapters on DDQA answers; save them in peft's format under out_dir/adapter.

    `vision_from`: a localization checkpoint whose trained vision weights the backbone takes
    first, so the language side learns on the very features the exported vision graph gives
    the edge (one shared vision pass). `extra_train` / `extra_eval`: more records (the
    grounded prompts of train/dialog/grounded.py) beside the DDQA files.

    Checkpoints (adapter + optimizer/scheduler state) go to out_dir/checkpoint every
    `config.checkpoint_every_steps` optimiser steps and at the end; `resume=True` continues
    from there and ends with the same adapter as an uninterrupted run. `on_step(step, loss)`
    is called after each optimiser step (and after that step's checkpoint).
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    start = time.perf_counter()
    acc = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=mixed_precision(config.precision, torch.cuda.is_available()),
    )
    torch.manual_seed(config.seed)
    train_records, eval_records, eval_split = read_records(config, ddqa_train, ddqa_test, extra_train, extra_eval)
    backbone = load_backbone(backbone_dir, device=str(acc.device))
    if vision_from is not None:
        from eiad.modeling.checkpoint import apply_vision_state, load_checkpoint

        apply_vision_state(backbone, load_checkpoint(Path(vision_from)))
    model = attach_lora(backbone, config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    sampler = EpochOrder(len(train_records), config.seed)
    loader = torch.utils.data.DataLoader(
        train_records,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=lambda recs: backbone.chat_inputs(
            [r.load_image() for r in recs], [r.question for r in recs], [r.answer for r in recs]
        ),
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
    )
    total = total_steps(len(train_records), config, acc.num_processes)
    warmup = warmup_steps(total, config.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, config.lr_schedule, config.min_lr_ratio)
    )
    out_dir = Path(out_dir)
    identity = {
        "config": config.model_dump(),
        "backbone": str(backbone_dir),
        "ddqa_train": str(ddqa_train),
        "vision_from": str(vision_from) if vision_from is not None else None,
        "train_records": len(train_records),
        "num_processes": acc.num_processes,
    }
    state = (
        load_dialog_checkpoint(
            out_dir / "checkpoint", model=model, optimizer=optimizer, scheduler=scheduler, identity=identity
        )
        if resume
        else DialogState()
    )
    model, optimizer, loader, scheduler = acc.prepare(model, optimizer, loader, scheduler)
    if state.loss_before is None:
        state.loss_before = evaluate_answer_loss(model, backbone, eval_records)

    def checkpoint() -> None:
        if acc.is_main_process:
            save_dialog_checkpoint(
                out_dir / "checkpoint",
                model=acc.unwrap_model(model),
                optimizer=optimizer,
                scheduler=scheduler,
                state=state,
                identity=identity,
            )
        acc.wait_for_everyone()

    loop = _Loop(acc, model, optimizer, scheduler, loader, sampler, config, total, checkpoint, on_step)
    loop.run(state, tqdm)
    after = evaluate_answer_loss(model, backbone, eval_records)
    report = DialogReport(
        state.step,
        len(train_records),
        len(eval_records),
        eval_split,
        state.loss_before,
        after,
        time.perf_counter() - start,
        sum(p.numel() for p in trainable),
        str(out_dir / "adapter"),
        state.resumed_from,
    )
    if acc.is_main_process:
        _write_outputs(out_dir, acc.unwrap_model(model), config, identity, ddqa_test, backbone.family, report, state)
    checkpoint()
    log.info(
        "dialog: %d steps, held-out answer loss %.4f -> %.4f (%s), %.1f s",
        state.step,
        state.loss_before,
        after,
        eval_split,
        report.wall_time_s,
    )
    return report


def total_steps(records: int, config: DialogConfig, num_processes: int = 1) -> int:
    """Optimiser steps of a run: epochs x steps per epoch, capped by `max_steps`."""
    batches = math.ceil(records / config.batch_size)
    per_epoch = math.ceil(batches / (config.gradient_accumulation_steps * num_processes))
    return min(config.max_steps or per_epoch * config.epochs, per_epoch * config.epochs)


def _micro_seed(seed: int, epoch: int, batch: int, process: int) -> int:
    """A fixed 63-bit seed per (seed, epoch, micro-batch, process): same inputs, same dropout masks."""
    import hashlib

    digest = hashlib.sha256(f"{seed}/{epoch}/{batch}/{process}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _write_outputs(
    out_dir: Path,
    model,
    config: DialogConfig,
    identity: dict,
    ddqa_test: Path | None,
    family: str,
    report: DialogReport,
    state: DialogState,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir / "adapter")
    (out_dir / "dialog_config.json").write_text(
        json.dumps(
            {
                "config": config.model_dump(),
                "backbone": identity["backbone"],
                "ddqa_train": identity["ddqa_train"],
                "ddqa_test": str(ddqa_test) if ddqa_test else None,
                "vision_from": identity["vision_from"],
                "family": family,
            },
            indent=2,
        )
    )
    (out_dir / "dialog_report.json").write_text(json.dumps(report.to_dict(), indent=2))
    metrics = {
        **report.to_dict(),
        "family": family,
        "train_loss": state.history,
        "loss_curve": str(out_dir / "loss_curve.png"),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    save_dialog_curve(state, report.loss_after, out_dir / "loss_curve.png", title=f"dialog LoRA ({family})")


class _Loop:
    """The optimiser loop; resumable at optimiser-step boundaries (see EpochOrder)."""

    def __init__(
        self,
        acc,
        model,
        optimizer,
        scheduler,
        loader,
        sampler: EpochOrder,
        config: DialogConfig,
        total: int,
        checkpoint,
        on_step: StepHook | None,
    ) -> None:
        self.acc, self.model, self.optimizer, self.scheduler = acc, model, optimizer, scheduler
        self.loader, self.sampler, self.config, self.total = loader, sampler, config, total
        self.checkpoint, self.on_step = checkpoint, on_step

    def run(self, state: DialogState, tqdm) -> None:
        acc, config = self.acc, self.config
        self.model.train()
        bar = tqdm(
            total=self.total, initial=state.step, desc="dialog LoRA", unit="step", disable=not acc.is_local_main_process
        )
        window: list[float] = []
        while state.step < self.total:
            # Global sample offset: every process has consumed `batch` micro-batches of this epoch.
            self.sampler.set_position(state.epoch, state.batch * config.batch_size * acc.num_processes)
            for batch in self.loader:
                # Dropout masks depend only on the micro-batch's position, so a resumed run draws the same ones.
                torch.manual_seed(_micro_seed(config.seed, state.epoch, state.batch, acc.process_index))
                with acc.accumulate(self.model):
                    loss = self.model(**batch).loss
                    acc.backward(loss)
                    if acc.sync_gradients:
                        acc.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad()
                state.batch += 1
                window.append(loss.item())
                if acc.sync_gradients:
                    self._after_step(state, sum(window) / len(window), bar)
                    window = []
                    if state.step >= self.total:
                        break
            else:
                state.epoch, state.batch = state.epoch + 1, 0
        bar.close()

    def _after_step(self, state: DialogState, loss: float, bar) -> None:
        state.step += 1
        lr = self.scheduler.get_last_lr()[0]
        state.history.append([state.step, loss, lr])
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        if state.step % self.config.checkpoint_every_steps == 0 and state.step < self.total:
            self.checkpoint()
        if self.on_step is not None:
            self.on_step(state.step, loss)
