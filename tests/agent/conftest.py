"""Fixtures for the dialogue-manager tests: agents over real stores, the real model once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime

SHARED_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "test-cache"


@pytest.fixture(scope="session")
def smollm() -> Iterator[Any]:
    """The default SmolLM2-135M-Instruct as a LocalRuntime, loaded once per session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from recursa.agent.runtime.local import load_local
    from recursa.agent.runtime.options import RuntimeOptions

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECURSA_CACHE_DIR", str(SHARED_CACHE))
        # One thread: on a busy shared machine, torch's thread pool competing with other
        # processes for the same cores is several times slower than a single thread.
        runtime = load_local(name="smollm2-135m", options=RuntimeOptions(threads=1))
    yield runtime
    runtime.close()


class _Unclosed:
    """Wraps a session runtime so that closing an Agent does not close the shared model."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def name(self) -> str:
        return str(self._inner.name)

    @property
    def context_window(self) -> int:
        return int(self._inner.context_window)

    @property
    def tokenizer_id(self) -> str:
        return str(self._inner.tokenizer_id)

    def count_tokens(self, messages: Any) -> int:
        return int(self._inner.count_tokens(messages))

    def count_text(self, text: str) -> int:
        return int(self._inner.count_text(text))

    def stream(self, messages: Any, params: Any = None, **kw: Any) -> Any:
        return self._inner.stream(messages, params, **kw)

    def close(self) -> None:
        return None


@pytest.fixture
def shared_model(smollm: Any) -> Any:
    """The session's real model, safe to hand to an Agent that will be closed."""
    return _Unclosed(smollm)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'agent.db'}"


@pytest.fixture
def make_agent(sqlite_url: str) -> Iterator[Callable[..., Agent]]:
    """Build Agents over one SQLite file with a ScriptedRuntime (or the given runtime)."""
    opened: list[Agent] = []

    def make(runtime: Any = None, db_url: str | None = None, **settings: Any) -> Agent:
        agent = Agent.open(db_url or sqlite_url, runtime or ScriptedRuntime(), **settings)
        opened.append(agent)
        return agent

    yield make
    for agent in opened:
        agent.close()
