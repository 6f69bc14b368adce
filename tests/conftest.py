"""Fixtures shared by the whole suite.

Every test runs with RECURSA_HOME pointed at its own temporary folder, so no
test touches a user's files. The model cache is shared by the whole run (and
kept between runs under .cache/) so the default model is converted once.

Database fixtures for any test that needs a store (see the section below):
`db_url` (parametrized: a fresh SQLite file, and a fresh PostgreSQL database
when RECURSA_TEST_POSTGRES_URL is set), `store` (Store.open(db_url)) and
`shared_store` (one store per module and database, for cheap checks).

Agent fixtures: `smollm` (the real default model, loaded once per session),
`shared_model` (that model, safe to hand to an Agent that will be closed),
`sqlite_url` and `make_agent` (Agents over one SQLite file, scripted model by default).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from recursa.agent import Agent
    from recursa.memory.store import Store

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
    # Semantic recall loads an embedding model into every Agent that plans a prompt; the
    # dialogue-logic tests recall by full-text and dates, and the tests of semantic recall
    # turn it on themselves (tests/recall).
    monkeypatch.setenv("RECURSA_RECALL__EMBEDDER", "none")
    return home


# --- databases ------------------------------------------------------------------------
#
# `db_url` runs a test once on SQLite (a fresh file under tmp_path) and once on
# PostgreSQL (a fresh database created for that one test and dropped after it),
# so tests never see each other's rows. The PostgreSQL run is marked `postgres`
# (deselect with -m "not postgres") and needs RECURSA_TEST_POSTGRES_URL, e.g.
# postgresql+psycopg://user@127.0.0.1:5432/test: unset, it is skipped with the
# reason shown; set but unreachable, it fails (CI sets it and must not skip).
# `store` is `Store.open(db_url)` (schema upgraded to head), closed after the test.
# `shared_store` is one such store per test module and database, for many small
# tests that only look at the conversations they create themselves.

POSTGRES_ENV = "RECURSA_TEST_POSTGRES_URL"


def postgres_base_url() -> str | None:
    """The PostgreSQL URL the tests were given, or None."""
    return os.environ.get(POSTGRES_ENV) or None


@contextmanager
def fresh_postgres_database(base_url: str) -> Iterator[str]:
    """Create an empty database next to `base_url`'s, yield its URL, drop it afterwards."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    base = make_url(base_url)
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    name = f"recursa_test_{uuid.uuid4().hex[:16]}"
    # CREATE/DROP DATABASE cannot run inside a transaction.
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"{POSTGRES_ENV} is set to {base.render_as_string(hide_password=True)} but the "
            f"server is unreachable: {exc.orig}",
            pytrace=False,
        )
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def empty_database(kind: str, folder: Path) -> Iterator[str]:
    """The URL of an empty database of `kind` ("sqlite" file in `folder`, or "postgres")."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'store.db'}"
        return
    base = postgres_base_url()
    if base is None:
        pytest.skip(f"PostgreSQL tests skipped: set {POSTGRES_ENV} to run them")
    with fresh_postgres_database(base) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database (no schema yet): SQLite file, then fresh PostgreSQL database."""
    with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """An open Store on `db_url` (both databases), closed after the test."""
    from recursa.memory.store import Store

    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="module", params=BACKENDS)
def shared_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """One Store per test module and database, for tests that only look at rows they made.

    Cheaper than `store` (no new database per test); use it for many small,
    parametrized checks that create their own conversations.
    """
    from recursa.memory.store import Store

    with empty_database(request.param, tmp_path_factory.mktemp("shared")) as url:
        opened = Store.open(url)
        try:
            yield opened
        finally:
            opened.close()


# Agents and the real model ---------------------------------------------------------------


@pytest.fixture(scope="session")
def smollm() -> Iterator[Any]:
    """The default SmolLM2-135M-Instruct as a LocalRuntime, loaded once per session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from recursa.agent.runtime.local import load_local
    from recursa.agent.runtime.options import RuntimeOptions

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECURSA_CACHE_DIR", str(SHARED_CACHE))
        # One thread per test process: `make test` runs two (pytest-xdist), one per core,
        # and two processes of two threads each on two cores slow each other several times.
        # Run alone (plain pytest), the model takes both cores.
        threads = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2
        runtime = load_local(name="smollm2-135m", options=RuntimeOptions(threads=threads))
    yield runtime
    runtime.close()


class Unclosed:
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
    return Unclosed(smollm)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'recursa.db'}"


@pytest.fixture
def make_agent(sqlite_url: str) -> Iterator[Callable[..., Agent]]:
    """Build Agents over one SQLite file with a ScriptedRuntime (or the given runtime)."""
    from recursa.agent import Agent
    from recursa.agent.runtime.scripted import ScriptedRuntime

    opened: list[Agent] = []

    def make(runtime: Any = None, db_url: str | None = None, **settings: Any) -> Agent:
        agent = Agent.open(db_url or sqlite_url, runtime or ScriptedRuntime(), **settings)
        opened.append(agent)
        return agent

    yield make
    for agent in opened:
        agent.close()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker's torch uses one thread (see `smollm`).

    Set before torch is imported: its thread pool reads OMP_NUM_THREADS once.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
