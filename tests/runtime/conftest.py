"""Fixtures for the runtime tests: the real default model, loaded once per session.

The converted model lives in the suite's shared cache (see tests/conftest.py),
so only the first run on a fresh clone pays for the conversion.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "test-cache"


@pytest.fixture(scope="session")
def smollm() -> Iterator[object]:
    """The default SmolLM2-135M-Instruct as a LocalRuntime (CPU, its default precision: int4)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from recursa.agent.runtime.local import load_local

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECURSA_CACHE_DIR", str(SHARED_CACHE))
        runtime = load_local(name="smollm2-135m")
    yield runtime
    runtime.close()
