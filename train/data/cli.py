"""`eiad data`: make and convert inspection data."""

from train.data.ddqa import cli as ddqa_cli
from train.data.synth import cli as synth_cli


def register(commands) -> None:
    parser = commands.add_parser(
        "data",
        help="synthetic production line and DDQA training files",
        description="Make inspection data: 'synth' generates a synthetic production line "
        "(images, pixel-exact defect masks, a camera stream); 'ddqa' turns any tree in the "
        "DDQA raw layout into the four DDQA task files.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    synth_cli.register(sub)
    ddqa_cli.register(sub)
