"""pytest fixtures for edge tests; import the ones you use into the test module."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.stand_ins.artifact import build_tiny_artifact


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory) -> Path:
    """A 64x64 tiny artifact (see tiny_artifact.py), built once per session."""
    return build_tiny_artifact(tmp_path_factory.mktemp("tiny_artifact"))


@pytest.fixture(scope="session")
def nan_artifact(tmp_path_factory) -> Path:
    """The same graph with NaN added to the anomaly map."""
    return build_tiny_artifact(tmp_path_factory.mktemp("nan_artifact"), poison="nan")
