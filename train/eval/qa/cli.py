"""`eiad eval ddqa` and `eiad eval mmad`: run a chat model and score its answers.

Declares arguments only; torch, transformers and peft are imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

_DDQA_DESCRIPTION = """\
Ask a model (a preset, a save_pretrained folder, or a base + LoRA adapter from 'eiad train')
every DDQA question of a build's split and score its replies per task:
  AD, DC, RDL  multiple choice: the reply's option letter must equal the reference letter
  DFM          box: IoU of the first [x1, y1, x2, y2] in the reply with the reference box;
               reported as mean IoU and the share with IoU >= 0.5
Replies without a letter (box) are counted as unparseable and wrong (IoU 0).
"""

_MMAD_DESCRIPTION = """\
Run a model over an MMAD-format json (dict keyed by relative image path, each with a
'conversation' list of {Question, Answer, Options, type}), write MMAD's answers file
(a JSON list of {image, question, question_type, correct_answer, gpt_answer}), then
score it like 'eiad eval mmad-score': the MMAD table is printed and the CSV written
beside the answers file (<stem>_accuracy.csv).
1-shot puts a normal template image (similar_templates or random_templates, the first)
before the query image in the same turn (families: minicpmv4_6, llava_siglip).
"""


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        metavar="PRESET|DIR",
        help="backbone: a preset (tiny-minicpmv46, base-llava-siglip, ...), a save_pretrained "
        "folder, or a merged model from 'eiad train merge'",
    )
    parser.add_argument(
        "--adapter",
        type=Path,
        metavar="DIR",
        help="LoRA adapter folder written by 'eiad train' (OUT/dialog/adapter); merged into --model",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument(
        "--rule",
        choices=("first", "last"),
        default="first",
        help="which letter counts when a reply names several (upstream EIAD: first; MMAD: last)",
    )
    parser.add_argument(
        "--fallback-option-text",
        action="store_true",
        help="when a reply has no letter, take the option whose text is closest (MMAD's fallback)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=32, help="reply length cap in tokens (default 32)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub) -> None:
    ddqa = sub.add_parser(
        "ddqa",
        help="DDQA accuracy per task (AD, DC, RDL letters; DFM box IoU)",
        description=_DDQA_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: eiad eval ddqa --model tiny-minicpmv46 --adapter runs/exp1/dialog/adapter "
        "--ddqa data/ddqa --out runs/exp1/ddqa_eval.json",
    )
    _model_args(ddqa)
    ddqa.add_argument(
        "--ddqa",
        required=True,
        type=Path,
        metavar="DIR|FILE.jsonl",
        help="a folder 'eiad data ddqa' wrote (reads its Task_*.jsonl of --split), or one .jsonl file "
        "(Task_<AD|DC|RDL|DFM|DD>.jsonl, or a mixed file: the task is told from each record)",
    )
    ddqa.add_argument(
        "--split",
        choices=("test", "calibration", "train"),
        default="test",
        help="part of a DDQA folder (default test: the images no weight or threshold was fitted on)",
    )
    ddqa.add_argument("--max-records", type=int, metavar="N", help="at most N records per task (default all)")
    ddqa.add_argument("--batch-size", type=int, default=1, help="questions per generate call (default 1)")
    ddqa.add_argument("--out", type=Path, metavar="RESULT.json", help="write the report (per task + every reply)")
    ddqa.set_defaults(func=_run_ddqa)

    mmad = sub.add_parser(
        "mmad",
        help="run a model on MMAD questions, write the answers file and score it",
        description=_MMAD_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: eiad eval mmad --model models/merged --mmad-json MMAD/mmad.json "
        "--image-root MMAD --shots 1 --out result/answers_1_shot_ours.json",
    )
    _model_args(mmad)
    mmad.add_argument("--mmad-json", required=True, type=Path, metavar="mmad.json", help="MMAD's question file")
    mmad.add_argument(
        "--image-root", required=True, type=Path, metavar="DIR", help="folder the json's image paths are relative to"
    )
    mmad.add_argument(
        "--shots",
        type=int,
        choices=(0, 1),
        default=0,
        help="0: query image only; 1: a normal template image first (default 0)",
    )
    mmad.add_argument(
        "--template",
        choices=("similar", "random"),
        default="similar",
        help="1-shot template list to take the first image from (default similar)",
    )
    mmad.add_argument("--max-questions", type=int, metavar="N", help="stop after N questions (a quick look)")
    mmad.add_argument(
        "--normal-flag",
        default="good",
        metavar="TEXT",
        help="image paths containing TEXT are normal parts when scoring (default good)",
    )
    mmad.add_argument("--out", required=True, type=Path, metavar="ANSWERS.json", help="answers file to write")
    mmad.set_defaults(func=_run_mmad)


def _check_positive(**values) -> None:
    from eiad.errors import ConfigError

    for name, value in values.items():
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def _run_ddqa(args: argparse.Namespace) -> int:
    from train.eval.qa.evaluate import format_qa_table, load_eval_model, load_qa_items, run_qa_eval

    _check_positive(max_records=args.max_records, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    items = load_qa_items(args.ddqa, args.split, args.max_records)
    backbone = load_eval_model(args.model, args.adapter, args.device)
    meta = {
        "model": str(args.model),
        "adapter": str(args.adapter) if args.adapter else None,
        "ddqa": str(args.ddqa),
        "split": args.split,
        "rule": args.rule,
        "fallback_option_text": args.fallback_option_text,
        "max_new_tokens": args.max_new_tokens,
    }
    report = run_qa_eval(
        backbone,
        items,
        rule=args.rule,
        fallback_to_option_text=args.fallback_option_text,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        meta=meta,
        progress=not args.no_progress,
    )
    print(format_qa_table(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}")
    return 0


def _run_mmad(args: argparse.Namespace) -> int:
    from train.eval.mmad.run import backbone_answerer, load_mmad, run_mmad, write_answers
    from train.eval.mmad.score import format_score_table, score_answers, write_score_csv
    from train.eval.qa.evaluate import load_eval_model

    _check_positive(max_questions=args.max_questions, max_new_tokens=args.max_new_tokens)
    questions = load_mmad(args.mmad_json, shots=args.shots, template=args.template, max_questions=args.max_questions)
    if not questions:
        from eiad.errors import DataError

        raise DataError(f"{args.mmad_json}: no questions found")
    backbone = load_eval_model(args.model, args.adapter, args.device)
    records = run_mmad(
        backbone_answerer(backbone, args.max_new_tokens),
        questions,
        args.image_root,
        rule=args.rule,
        fallback_to_option_text=args.fallback_option_text,
        progress=not args.no_progress,
    )
    write_answers(records, args.out)
    print(f"wrote {args.out} ({len(records)} answers)")
    score = score_answers(records, normal_flag=args.normal_flag)
    print(format_score_table(score))
    csv_path = write_score_csv(score, args.out.with_name(f"{args.out.stem}_accuracy.csv"))
    print(f"wrote {csv_path}")
    return 0 if score.scored else 1
