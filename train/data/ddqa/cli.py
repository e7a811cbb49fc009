"""`eiad data ddqa`: turn a tree in the DDQA raw layout into the DDQA task files.

Only argparse here; the builder (OpenCV, numpy) is imported when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

_DESCRIPTION = """\
Build the DDQA training files from any tree in the DDQA raw layout:

  ROOT/<Dataset>/<Sub>/NG/<defect>/image/<stem>.png|jpg|jpeg|bmp|tif|tiff
  ROOT/<Dataset>/<Sub>/NG/<defect>/mask/<stem>.<any of those>   (white = defect)
  ROOT/<Dataset>/<Sub>/OK/image/<stem>.<ext>

The images are split by image into three parts, per (dataset, sub, class), seeded:
train (fits the weights), calibration (fits thresholds and confidence cut-offs, nothing
else) and test (every reported figure). Writes into DIR: Task_AD.jsonl, Task_DC.jsonl,
Task_RDL.jsonl, Task_DFM.jsonl, Task_DD.jsonl and train.jsonl (all five) for the training part; the same
five plus calibration.jsonl in DIR/calibration/ and plus test.jsonl in DIR/test/;
split.json (which image is in which part, for the trainer) and report.json (counts,
skipped files with reasons). Every answer is measured on the
masks. Bad files (missing or mis-sized mask, unreadable image, empty NG mask, symlink
out of ROOT, unknown extension, malformed tree) are skipped with a warning and counted;
--strict stops at the first one instead. Details: docs/ddqa.md.
"""

_EPILOG = """\
examples:
  eiad data ddqa data/raw --out data/ddqa
  eiad data ddqa data/raw --out data/ddqa --format messages --relative-paths --seed 7
  eiad data ddqa data/raw --out data/ddqa --strict          # fail on the first bad file
"""


def register(sub) -> None:
    parser = sub.add_parser(
        "ddqa",
        help="build DDQA task files (AD, DC, RDL, DFM, DD) from a raw image/mask tree",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("root", type=Path, metavar="ROOT", help="raw root holding <Dataset>/<Sub>/NG|OK folders")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output directory (must be empty unless --force; not inside ROOT)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the split, question wording, option order and answer letters (default 0)",
    )
    parser.add_argument(
        "--calibration-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="share of each (dataset, sub, class) kept by image to fit thresholds, 0 <= F < 1 (default 0.2)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="share of each (dataset, sub, class) kept by image for the reported figures, 0 <= F < 1 "
        "(default 0.2); a class with >= 2 images gets at least one test image, with >= 3 also one "
        "calibration image",
    )
    parser.add_argument(
        "--good-calibration-fraction",
        type=float,
        default=None,
        metavar="F",
        help="share of the good (OK) images kept for calibration, if it should differ from --calibration-fraction: "
        "the 1 %% false-reject threshold is fitted on good parts, and 60 of them can only show 1 in 60",
    )
    parser.add_argument(
        "--format",
        dest="record_format",
        choices=("query", "messages"),
        default="query",
        help="record form: 'query' = swift 2.x {query, response, images} (default); "
        "'messages' = swift 3.x {messages, images}",
    )
    parser.add_argument(
        "--relative-paths",
        action="store_true",
        help="write image paths relative to --out (default: absolute); run training from --out",
    )
    parser.add_argument("--strict", action="store_true", help="stop with an error at the first bad file")
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty --out; overwrites only the files this command writes",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from eiad.errors import ConfigError
    from train.data.ddqa.build import DdqaOptions, build_ddqa
    from train.data.ddqa.report import format_summary

    try:
        options = DdqaOptions(
            seed=args.seed,
            calibration_fraction=args.calibration_fraction,
            test_fraction=args.test_fraction,
            good_calibration_fraction=args.good_calibration_fraction,
            record_format=args.record_format,
            relative_paths=args.relative_paths,
            strict=args.strict,
            force=args.force,
            progress=not args.no_progress,
        )
    except ValidationError as error:
        problems = "; ".join(
            f"--{'-'.join(map(str, e['loc'])).replace('_', '-') or 'fractions'}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"invalid option: {problems}") from None
    report = build_ddqa(args.root, args.out, options)
    print(format_summary(report))
    return 0
