"""Dialog path: LoRA on the language side, next-token loss on DDQA answers only.

Independent of the localization path: its own optimiser over LoRA parameters only; the
vision tower (shared with the localization module) and everything else stay frozen, so
dialog training cannot move the features the mask is computed from. Runs under
`accelerate launch` / `torchrun` (DDP) or DeepSpeed ZeRO-2 through `Accelerator`,
single-process on CPU. Outputs: `adapter/` in peft's format, `dialog_config.json`,
`dialog_report.json`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from eiad.errors import ModelError
from eiad.modeling.backbones import EiadBackbone, load_backbone
from train.dialog_config import DialogConfig
from train.dialog_data import DialogRecord, read_ddqa

log = logging.getLogger(__name__)


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

    def to_dict(self) -> dict:
        return asdict(self)


def lr_factor(step: int, total_steps: int, warmup_ratio: float, schedule: str) -> float:
    """Multiplier of the base lr at optimiser step `step` (0-based): linear warm-up, then decay."""
    warmup = max(1, math.ceil(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress)) if schedule == "cosine" else max(0.0, 1.0 - progress)


def attach_lora(backbone: EiadBackbone, config: DialogConfig):
    """Wrap `backbone.hf_model` in a PeftModel; only LoRA weights are trainable."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_regex or backbone.lora_target_regex, bias="none",
    )
    model = get_peft_model(backbone.hf_model, lora)
    for name, param in model.named_parameters():
        param.requires_grad = "lora_" in name
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return model


@torch.no_grad()
def evaluate_answer_loss(model: torch.nn.Module, backbone: EiadBackbone, records: Sequence[DialogRecord],
                         batch_size: int = 1) -> float:
    """Mean next-token NLL (nats) over answer tokens only, token-weighted across records."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        batch = backbone.chat_inputs([r.load_image() for r in chunk], [r.question for r in chunk],
                                     [r.answer for r in chunk])
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        logits = model(**batch).logits.float()
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
        total += float(nll)
        count += int((labels[:, 1:] != -100).sum())
    model.train(was_training)
    if count == 0:
        raise ModelError("evaluate_answer_loss: no answer tokens in the given records")
    return total / count


def train_dialog(config: DialogConfig, backbone_dir: Path, ddqa_train: Path, ddqa_val: Path | None,
                 out_dir: Path) -> DialogReport:
    """Fine-tune LoRA adapters on DDQA answers; save them in peft's format under out_dir/adapter."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    start = time.perf_counter()
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and torch.cuda.is_available())
    acc = Accelerator(gradient_accumulation_steps=config.gradient_accumulation_steps,
                      mixed_precision="bf16" if use_bf16 else "no")
    set_seed(config.seed)
    train_records = read_ddqa(ddqa_train)
    eval_records = read_ddqa(ddqa_val) if ddqa_val is not None else train_records
    eval_split = "val" if ddqa_val is not None else "train (no val file given)"
    if config.eval_max_records:
        eval_records = eval_records[:config.eval_max_records]
    backbone = load_backbone(backbone_dir, device=str(acc.device))
    model = attach_lora(backbone, config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    loader = torch.utils.data.DataLoader(
        train_records, batch_size=config.batch_size, shuffle=True, collate_fn=lambda recs: backbone.chat_inputs(
            [r.load_image() for r in recs], [r.question for r in recs], [r.answer for r in recs]),
        generator=torch.Generator().manual_seed(config.seed),
    )
    per_epoch = math.ceil(len(loader) / (config.gradient_accumulation_steps * acc.num_processes))
    total = min(config.max_steps or per_epoch * config.epochs, per_epoch * config.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, config.warmup_ratio, config.lr_schedule))
    model, optimizer, loader, scheduler = acc.prepare(model, optimizer, loader, scheduler)
    before = evaluate_answer_loss(model, backbone, eval_records)
    steps = _train_loop(acc, model, optimizer, scheduler, loader, config, total, tqdm)
    after = evaluate_answer_loss(model, backbone, eval_records)
    out_dir = Path(out_dir)
    report = DialogReport(steps, len(train_records), len(eval_records), eval_split, before, after,
                          time.perf_counter() - start, sum(p.numel() for p in trainable), str(out_dir / "adapter"))
    if acc.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        acc.unwrap_model(model).save_pretrained(out_dir / "adapter")
        (out_dir / "dialog_config.json").write_text(json.dumps(
            {"config": config.model_dump(), "backbone": str(backbone_dir), "ddqa_train": str(ddqa_train),
             "ddqa_val": str(ddqa_val) if ddqa_val else None, "family": backbone.family}, indent=2))
        (out_dir / "dialog_report.json").write_text(json.dumps(report.to_dict(), indent=2))
    acc.wait_for_everyone()
    log.info("dialog: %d steps, held-out answer loss %.4f -> %.4f (%s), %.1f s",
             steps, before, after, eval_split, report.wall_time_s)
    return report


def _train_loop(acc, model, optimizer, scheduler, loader, config: DialogConfig, total: int, tqdm) -> int:
    model.train()
    steps = 0
    bar = tqdm(total=total, desc="dialog LoRA", unit="step", disable=not acc.is_local_main_process)
    while steps < total:
        for batch in loader:
            with acc.accumulate(model):
                loss = model(**batch).loss
                acc.backward(loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if acc.sync_gradients:
                steps += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
                if steps >= total:
                    break
    bar.close()
    return steps
