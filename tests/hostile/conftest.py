"""Fixtures of the hostile suite: a seeded database (SQLite, then PostgreSQL) whose every
stored field holds escape sequences. The helpers are in hostile_helpers.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_helpers import ESC

REPO = Path(__file__).resolve().parents[2]


def _suite_conftest() -> Any:
    import importlib.util

    name = "hostile_suite_conftest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def close_log_file() -> Iterator[None]:
    yield
    from recursa.agent.logs import stop_logging

    stop_logging()


@pytest.fixture(scope="module", params=_suite_conftest().BACKENDS)
def seeded_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database (SQLite, then PostgreSQL) with stored text full of escape sequences:
    conversation 1 (imported, every field), conversation 2 (a scripted turn with a trace)."""
    folder = tmp_path_factory.mktemp("hostile")
    with (
        _suite_conftest().empty_database(request.param, folder) as url,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("RECURSA_HOME", str(folder / "home"))
        mp.setenv("RECURSA_RECALL__EMBEDDER", "none")
        from recursa.agent import Agent
        from recursa.agent.runtime.scripted import ScriptedRuntime

        with Agent.open(url, ScriptedRuntime(replies=[f"reply {ESC}"])) as agent:
            agent.import_conversation(
                {
                    "title": f"title {ESC}",
                    "system_prompt": f"system {ESC}",
                    "messages": [
                        {"role": "user", "content": f"hello {ESC}", "metadata": {"k": ESC}},
                        {"role": "assistant", "content": f"answer {ESC}"},
                    ],
                }
            )
            cid = agent.create_conversation(title=f"second {ESC}", system_prompt=f"sys {ESC}")
            agent.send(cid, f"question {ESC}")
        yield url


class Run:
    """`recursa --db URL ...` through click's test runner (user-facing exits only)."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def __call__(self, *args: str, input: str | None = None) -> Any:
        from click.testing import CliRunner
        from recursa.tui.cli import cli

        result = CliRunner().invoke(cli, ["--db", self.db_url, *args], input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def json(self, *args: str) -> Any:
        import json

        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def run(sqlite_url: str) -> Run:
    return Run(sqlite_url)


@pytest.fixture
def seed(make_agent: Any) -> Any:
    """Import a conversation of (user, assistant) turns into the `run` database."""

    def make(title: str, turns: list[tuple[str, str]]) -> int:
        messages = []
        for user, assistant in turns:
            messages += [
                {"role": "user", "content": user},
                {"role": "assistant", "content": assistant},
            ]
        return int(make_agent().import_conversation({"title": title, "messages": messages}))

    return make
