"""Fixtures for the TUI tests: a SQLite file per test and an app factory with a scripted model."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.tui.app import RecursaApp


@pytest.fixture(autouse=True)
def utc_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Show times in UTC, so the same stored timestamps look the same on every machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def tui_db(tmp_path: Path) -> str:
    """A fresh SQLite database URL for one test."""
    return f"sqlite:///{tmp_path / 'tui.db'}"


@pytest.fixture
def seed(tui_db: str) -> Iterator[Agent]:
    """An Agent on the test database, for putting conversations in before the app opens."""
    agent = Agent.open(tui_db, ScriptedRuntime())
    try:
        yield agent
    finally:
        agent.close()


@pytest.fixture
def make_app(tui_db: str) -> Callable[..., RecursaApp]:
    """Build the app on the test database, with a scripted model unless one is given."""

    def make(runtime: Any = None, **kwargs: Any) -> RecursaApp:
        model = runtime if runtime is not None else ScriptedRuntime()
        return RecursaApp(model=model, db_url=tui_db, **kwargs)

    return make
