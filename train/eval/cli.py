"""`eiad eval`: score models (MMAD answers, localization metrics, DDQA QA accuracy)."""

from train.eval.localization import cli as loc_cli
from train.eval.mmad import cli as mmad_cli
from train.eval.qa import cli as qa_cli


def register(commands) -> None:
    parser = commands.add_parser(
        "eval",
        help="evaluate: MMAD runs and scoring, DDQA accuracy, localization metrics",
        description="Evaluate models and answer files.",
    )
    sub = parser.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND", required=True)
    mmad_cli.register(sub)
    loc_cli.register(sub)
    qa_cli.register(sub)
