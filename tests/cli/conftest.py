"""Fixtures for the CLI tests: run `recursa` in-process on a fresh database, and seed data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.tui.cli import cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


def load_suite_module(name: str, relative: str) -> Any:
    """A helper module of the suite by path (the test folders are not packages)."""
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def close_log_file() -> Iterator[None]:
    """A CLI run writes the log file of the test's RECURSA_HOME; close it after the test."""
    yield
    from recursa.agent.logs import stop_logging

    stop_logging()


@pytest.fixture
def suite_conftest() -> Any:
    """tests/conftest.py as a module (for fresh_postgres_database), whatever `conftest` is now."""
    return load_suite_module("cli_suite_conftest", "tests/conftest.py")


@pytest.fixture
def openai_server() -> Any:
    """tests/runtime/openai_server.py: a real OpenAI-compatible server on 127.0.0.1."""
    return load_suite_module("cli_openai_server", "tests/runtime/openai_server.py")


@dataclass
class Run:
    """`recursa --db URL ...` through click's test runner."""

    db_url: str

    def __call__(self, *args: str, input: str | None = None, db: str | None = None) -> Result:
        result = CliRunner().invoke(cli, ["--db", db or self.db_url, *args], input=input)
        # A user-facing failure exits through SystemExit; anything else is a traceback (a bug).
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self(*args, input=input)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str, input: str | None = None) -> Any:
        import json

        return json.loads(self.ok(*args, "--json", input=input).stdout)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def run(sqlite_url: str) -> Run:
    """The CLI on a fresh SQLite database."""
    return Run(sqlite_url)


@pytest.fixture
def run_on() -> Callable[[str], Run]:
    """The CLI on a given database URL (e.g. the `db_url` fixture's, for PostgreSQL runs)."""
    return Run


@pytest.fixture
def agent_on(
    sqlite_url: str,
) -> Iterator[Callable[..., Agent]]:
    """Open Agents (scripted model) on the same database the `run` fixture uses."""
    opened: list[Agent] = []

    def open_agent(db_url: str | None = None, **kw: Any) -> Agent:
        runtime = kw.pop("runtime", None) or ScriptedRuntime()
        agent = Agent.open(db_url or sqlite_url, runtime, **kw)
        opened.append(agent)
        return agent

    yield open_agent
    for agent in opened:
        agent.close()


@pytest.fixture
def seed(agent_on: Callable[..., Agent]) -> Callable[..., int]:
    """Make a conversation of (user, assistant) turns in the `run` database; returns its id."""

    def make(title: str, turns: list[tuple[str, str]], db_url: str | None = None) -> int:
        messages: list[dict[str, str]] = []
        for user, assistant in turns:
            messages += [
                {"role": "user", "content": user},
                {"role": "assistant", "content": assistant},
            ]
        return agent_on(db_url).import_conversation({"title": title, "messages": messages})

    return make
