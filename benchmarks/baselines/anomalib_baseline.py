"""anomalib's own inference path as a baseline, behind an import guard.

anomalib needs torchvision, i.e. torch 2.14.1 + torchvision 0.29.1, which cannot share
the project's venv (torch 2.13 is pinned there; STACK.md). Install it in a separate venv:

    python3.11 -m venv .venv-anomalib
    .venv-anomalib/bin/pip install torch==2.14.1 torchvision==0.29.1 anomalib

and run the baseline from that venv (`.venv-anomalib/bin/python -m
benchmarks.baselines.anomalib_baseline`, an integration point: not done yet, see
docs/bench.md). Its pretrained backbones cannot be downloaded offline, so PatchCore
would run with `pre_trained=False`: speed comparable, accuracy not.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str


def availability() -> Availability:
    """Whether anomalib imports here, and if not, why (for the report's notes)."""
    try:
        import anomalib  # noqa: F401
    except ImportError as error:
        return Availability(False, f"anomalib is not importable in this venv ({error}); it needs torchvision (torch 2.14.1), "
                                   "so it lives in a separate venv: see benchmarks/baselines/anomalib_baseline.py")
    return Availability(True, "")
