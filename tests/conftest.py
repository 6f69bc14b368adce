"""Fixtures shared by the whole suite.

Every test runs with RECURSA_HOME pointed at its own temporary folder, so no
test touches a user's files. The model cache is shared by the whole run (and
kept between runs under .cache/) so the default model is converted once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_CACHE = REPO / ".cache" / "test-cache"


@pytest.fixture(autouse=True)
def recursa_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private RECURSA_HOME for each test; the model cache stays shared."""
    home = tmp_path / "recursa-home"
    home.mkdir()
    monkeypatch.setenv("RECURSA_HOME", str(home))
    monkeypatch.setenv("RECURSA_CACHE_DIR", str(SHARED_CACHE))
    monkeypatch.delenv("RECURSA_DB_URL", raising=False)
    return home
