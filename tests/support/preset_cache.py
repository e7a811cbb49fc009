"""A module-scoped private EIAD_CACHE: tiny presets are built once per test module into a
temp folder, never into the user's cache, and the variable is restored afterwards."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def preset_cache(tmp_path_factory):
    old = os.environ.get("EIAD_CACHE")
    os.environ["EIAD_CACHE"] = str(tmp_path_factory.mktemp("eiad_cache"))
    yield
    if old is None:
        os.environ.pop("EIAD_CACHE")
    else:
        os.environ["EIAD_CACHE"] = old
