"""Logging set-up, done once by the command-line entry point.

Library modules only call `logging.getLogger(__name__)`; nothing below the CLI
configures handlers or prints.
"""

import logging

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(verbosity: int = 0) -> None:
    """Configure the root logger: 0 -> INFO, 1+ -> DEBUG, -1 -> WARNING."""
    level = logging.INFO
    if verbosity >= 1:
        level = logging.DEBUG
    elif verbosity < 0:
        level = logging.WARNING
    logging.basicConfig(level=level, format=_FORMAT, datefmt="%H:%M:%S", force=True)
    # Chatty third-party loggers stay at WARNING unless asked for DEBUG.
    # onnxscript/onnx_ir log one INFO line per node while exporting.
    for name in ("PIL", "matplotlib", "urllib3", "httpx", "filelock", "onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
