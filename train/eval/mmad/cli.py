"""`eiad eval mmad-score`: score an MMAD answers file into MMAD's accuracy table.

Declares arguments only; the scorer is imported when the command runs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

_DESCRIPTION = """\
Score an MMAD answers file (a JSON list of {"image", "question", "question_type",
"correct_answer", "gpt_answer"}) exactly as MMAD does, and print and write the table
in the layout of MMAD's published result CSVs: one row per dataset (first path
component of "image") plus "Average"; columns Anomaly Detection (balanced accuracy over
normal and anomalous images), Defect Classification, Defect Localization, Defect
Description, Defect Analysis, Object Classification, Object Analysis (Object Structure
+ Object Details), Average, Recall, Precision, F1, Overkill (normal images called
defective) and Miss (defective images called normal), all in percent.
"""

_EPILOG = """\
Answers that are not exactly one capital letter A-E are dropped and counted (MMAD's
rule); --strict counts them wrong instead. Exit status: 0 scored, 1 nothing could be
scored, 2 unreadable or malformed file. See docs/mmad.md for every rule.
example: eiad eval mmad-score result/answers_0_shot_ours.json --out ours.csv
"""


def register(sub) -> None:
    parser = sub.add_parser(
        "mmad-score",
        help="score an MMAD answers file (MMAD's accuracy table, Overkill and Miss)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("answers", type=Path, metavar="ANSWERS.json", help="MMAD answers file")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="RESULT.csv",
        default=None,
        help="where to write the CSV (default: beside ANSWERS, named <stem>_accuracy.csv as MMAD does)",
    )
    parser.add_argument(
        "--normal-flag",
        default="good",
        metavar="TEXT",
        help="an image whose path contains TEXT (case-sensitive) is a normal part (default: good)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="count answers that are not one letter A-E as wrong instead of dropping them",
    )
    parser.add_argument(
        "--reparse",
        choices=("first", "last"),
        default=None,
        help="gpt_answer holds raw model replies: extract the letter with MMAD's regex rule, "
        "keeping the first or last standalone capital A-E (MMAD keeps the last)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from eiad.errors import DataError
    from train.eval.mmad.score import format_score_table, load_answers, score_answers, write_score_csv

    records = load_answers(args.answers)
    if not records:
        raise DataError(f"{args.answers}: the answers file holds no records; nothing to score")
    if args.reparse:
        records = _reparse(records, args.reparse)
    score = score_answers(records, normal_flag=args.normal_flag, strict=args.strict)
    print(format_score_table(score))
    out = args.out or args.answers.with_name(f"{args.answers.stem}_accuracy.csv")
    write_score_csv(score, out)
    print(f"wrote {out}")
    if score.scored == 0:
        print("no record could be scored: every answer was not one letter A-E (try --reparse?)")
        return 1
    return 0


def _reparse(records: list[dict], rule: str) -> list[dict]:
    from train.eval.answer_parsing import LETTERS, parse_answer

    changed = 0
    out = []
    for record in records:
        given = record["gpt_answer"]
        if isinstance(given, str) and given not in LETTERS:
            letter = parse_answer(given, None, rule, False, mmad_compat=True)
            if letter is not None:
                record = {**record, "gpt_answer": letter}
                changed += 1
        out.append(record)
    log.info("re-parsed %d raw replies into letters (rule: %s)", changed, rule)
    return out
