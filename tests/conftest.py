"""Shared test set-up: one torch thread (CI machines have 2 cores) and a private dataset cache per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Generated/prepared datasets go to a session temp folder, never to the user's ~/.cache."""
    old = os.environ.get("ALPOSE_CACHE")
    os.environ["ALPOSE_CACHE"] = str(tmp_path_factory.mktemp("alpose-cache"))
    yield
    if old is None:
        os.environ.pop("ALPOSE_CACHE", None)
    else:
        os.environ["ALPOSE_CACHE"] = old


@pytest.fixture
def shared_data() -> Path:
    """The real annotation files of ../shared/data; tests using them skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real annotation files not found at {SHARED_DATA} (the ../shared/data folder beside the repo)"
        )
    return SHARED_DATA
