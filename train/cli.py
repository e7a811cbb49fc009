"""`eiad train`: fine-tune the EIAD model (localization module and dialog LoRA).

    eiad train --config configs/train.yaml [--only localization|dialog] [--resume] [--out DIR]
    eiad train merge --adapter DIR --out DIR

Nothing heavy is imported here: torch and transformers load inside the handlers.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

_DESCRIPTION = """\
Fine-tune EIAD on a DDQA build. Two independent training paths, each with its own loss,
optimiser and schedule, never sharing gradients:
  localization  the defect localization module (mask, image score, defect class) on the
                vision tower's features; writes OUT/localization/checkpoint (safetensors,
                calibrated thresholds, metrics.json, loss_curve.png, val_grid.png)
  dialog        LoRA on the language model, next-token loss on DDQA answers; writes
                OUT/dialog/adapter, checkpoint/ (for --resume), metrics.json, loss_curve.png
Both run by default; --only picks one. Multi-GPU: 'accelerate launch -m commands.main train ...'.

Every quality figure printed is on the DDQA build's test split; thresholds are fitted on
its calibration split (a line's tolerated false-reject rate by default).

A line with no defect samples yet: --normal-only trains the localization path from the
good images alone (pseudo-defects drawn on them, plus a memory bank of good patches,
PatchCore-style, inside the exported graph); classes are then "unknown". When defect
samples arrive, train as usual, with `localization.normal_bank: true` to keep the bank
beside the supervised module (both maps fused in the graph).
"""


def register(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="fine-tune the EIAD model (localization module and dialog LoRA)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="training config YAML (see configs/train.yaml)")
    parser.add_argument(
        "--only", choices=("localization", "dialog"), help="train one path only (default: both configured)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue each selected path from its last checkpoint in the output folder "
        "(same config and data; the result equals an uninterrupted run)",
    )
    parser.add_argument("--out", help="output folder (overrides out_dir in the config)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (overrides device in the config; default auto)")
    parser.add_argument(
        "--normal-only",
        action="store_true",
        help="localization from good images only (same as localization.normal_only: true)",
    )
    parser.set_defaults(func=_train, train_command=None)
    sub = parser.add_subparsers(dest="train_command", metavar="COMMAND")
    merge = sub.add_parser(
        "merge",
        help="merge a trained LoRA adapter into the base model (for export)",
        description="Merge the dialog path's LoRA adapter into its base model and save a "
        "plain transformers checkpoint that 'eiad export' can quantize.",
    )
    merge.add_argument("--adapter", required=True, help="LoRA adapter folder written by 'eiad train' (peft format)")
    merge.add_argument("--out", required=True, help="folder for the merged model")
    merge.add_argument("--backbone", help="base model (preset or folder); default: the one the dialog run used")
    merge.set_defaults(func=_merge)
    report = sub.add_parser(
        "report",
        help="re-check a finished dialog run's explanations (OUT/dialog/explanations.json)",
        description="Ask a finished dialog run's adapter the explainer's grounded question on the held-out "
        "test images again and check every answer (what 'eiad train' does after the dialog path), "
        "e.g. after the checker changed. Needs the run's localization and dialog outputs.",
    )
    report.add_argument("--config", required=True, help="the training config YAML of the run")
    report.set_defaults(func=_report)


def _train(args) -> int:
    from eiad.errors import ConfigError
    from train.config import LocalizationConfig, load_train_config

    if not args.config:
        raise ConfigError("eiad train needs --config FILE (start from configs/train.yaml)")
    config = load_train_config(args.config)
    updates = {}
    if args.out:
        updates["out_dir"] = args.out
    if args.device:
        updates["device"] = args.device
    if args.normal_only:
        updates["localization"] = {**(config.localization or LocalizationConfig()).model_dump(), "normal_only": True}
    config = config.model_validate({**config.model_dump(), **updates}) if updates else config
    paths = [args.only] if args.only else [p for p in ("localization", "dialog") if getattr(config, p) is not None]
    for path in paths:
        if getattr(config, path) is None:
            raise ConfigError(f"{args.config}: --only {path} but the config has no '{path}:' section")
    if "localization" in paths:
        from train.localization.trainer import train_localization

        result = train_localization(config, resume=args.resume)
        print(f"localization checkpoint: {result.checkpoint}  ({result.steps} steps, {result.wall_s:.0f} s)")
        for key, value in result.metrics.items():
            print(f"  {key:16s} {value:.4f}" if isinstance(value, float) else f"  {key:16s} {value}")
    if "dialog" in paths:
        _train_dialog(config, args)
    return 0


def _report(args) -> int:
    from pathlib import Path

    from eiad.errors import ConfigError
    from train.config import load_train_config

    config = load_train_config(args.config)
    out = Path(config.out_dir) / "dialog"
    if not (out / "adapter").is_dir():
        raise ConfigError(f"{out / 'adapter'}: no dialog adapter; train first with 'eiad train --config {args.config}'")
    vision_from, _, test_cases = _after_localization(config)
    if not test_cases:
        raise ConfigError(f"{config.out_dir}: no finished localization run with thresholds to build the test questions")
    _explanation_report(config, out, vision_from, test_cases)
    return 0


def _train_dialog(config, args) -> None:
    from pathlib import Path

    from eiad.errors import ConfigError
    from train.dialog.trainer import train_dialog

    if config.ddqa_dir is None:
        raise ConfigError(f"{args.config}: the dialog path needs 'ddqa_dir' (the folder 'eiad data ddqa' wrote)")
    ddqa = Path(config.ddqa_dir)
    test = ddqa / "test" / "test.jsonl"
    out = Path(config.out_dir) / "dialog"
    from eiad.modeling.checkpoint import load_checkpoint
    from train.dialog.grounded import counterfactual_cases, grounded_records

    vision_from, train_cases, test_cases = _after_localization(config)
    if train_cases:
        names = load_checkpoint(Path(config.out_dir) / "localization" / "checkpoint").class_names
        train_cases = train_cases + counterfactual_cases(
            train_cases, names, config.dialog.grounded_counterfactuals, config.seed
        )
    figures = config.dialog.grounded_figures
    grounded_train = grounded_records(train_cases, config.seed, figures)
    grounded_eval = grounded_records(test_cases, config.seed, figures)
    report = train_dialog(
        config.dialog,
        config.backbone,
        ddqa / "train.jsonl",
        test if test.is_file() else None,
        out,
        resume=args.resume,
        vision_from=vision_from,
        extra_train=grounded_train,
        extra_eval=grounded_eval,
    )
    resumed = f", resumed from step {report.resumed_from_step}" if args.resume else ""
    print(
        f"dialog adapter: {report.adapter_dir}  ({report.steps} steps{resumed}, held-out answer loss "
        f"{report.loss_before:.4f} -> {report.loss_after:.4f}); loss curve and metrics.json in {out}"
    )
    if test_cases:
        _explanation_report(config, out, vision_from, test_cases)


def _explanation_report(config, out, vision_from, test_cases) -> None:
    """The trained model's answers to the explainer's question on held-out test images, checked
    (train/eval/explanations.py); written to OUT/dialog/explanations.json and printed."""
    import json

    from eiad.line_goals import EXPLANATION_GOALS, format_goals, judge
    from eiad.modeling.checkpoint import load_checkpoint
    from train.eval.explanations import choose_cases, explanation_quality, truth_of_split
    from train.eval.qa.evaluate import load_eval_model

    checkpoint = out.parent / "localization" / "checkpoint"
    model = load_eval_model(str(config.backbone), out / "adapter", vision_from=vision_from)
    cases = choose_cases(test_cases, config.dialog.report_ng_images, config.dialog.report_ok_images)
    names = load_checkpoint(checkpoint).class_names
    quality = explanation_quality(model, cases, truth_of_split(config.split), names, config.dialog.max_new_tokens)
    quality["judged"] = judge(quality, EXPLANATION_GOALS)
    (out / "explanations.json").write_text(json.dumps(quality, indent=2) + "\n")
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    print(
        f"explanations on {quality['images']} test images ({quality['ng_explained']} NG): median "
        f"{quality['median_words']} words; class+location agree {pct(quality['class_location_agreement'])}, "
        f"shape {pct(quality['shape_agreement'])}, appearance {pct(quality['appearance_agreement'])} "
        f"(vs the true mask); consistent {pct(quality['consistent'])}; in {out / 'explanations.json'}"
    )
    print(f"  {format_goals(quality['judged'])}")


def _after_localization(config):
    """What the dialog run takes from a finished localization run in the same out_dir: its
    trained vision tower (when it unfroze one) and the grounded cases built from its output
    on the train and test images (`dialog.grounded`). Nothing without such a run."""
    from pathlib import Path

    from eiad.modeling.checkpoint import load_checkpoint

    checkpoint = Path(config.out_dir) / "localization" / "checkpoint"
    if not (checkpoint / "meta.json").is_file():
        return None, [], []
    saved = load_checkpoint(checkpoint)
    vision_from = checkpoint if saved.vision_state else None
    if not (config.dialog.grounded and saved.thresholds and saved.localizer_state):
        return vision_from, [], []
    from train.dialog.grounded import grounded_cases

    split = Path(config.split)
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    return (
        vision_from,
        grounded_cases(checkpoint, split, "train", device),
        grounded_cases(checkpoint, split, "test", device),
    )


def _merge(args) -> int:
    import json
    from pathlib import Path

    from eiad.errors import ConfigError
    from train.dialog.merge import merge_lora

    backbone = args.backbone
    run_config = Path(args.adapter).parent / "dialog_config.json"
    if backbone is None and run_config.is_file():
        backbone = json.loads(run_config.read_text())["backbone"]
    if backbone is None:
        raise ConfigError(f"no --backbone given and {run_config} not found: pass --backbone PRESET_OR_DIR")
    vision_from = json.loads(run_config.read_text()).get("vision_from") if run_config.is_file() else None
    out = merge_lora(backbone, Path(args.adapter), Path(args.out), Path(vision_from) if vision_from else None)
    print(f"merged model written to {out}")
    return 0
