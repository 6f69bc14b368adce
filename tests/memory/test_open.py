"""Opening a store: default location, and clear errors for unusable databases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from recursa.memory import DatabaseUnavailableError, InvalidInputError, Store
from recursa.memory.locations import default_db_path


def test_default_store_lives_in_the_data_directory(recursa_home: Path) -> None:
    """Store.open() with no URL makes the data dir and a SQLite file under RECURSA_HOME."""
    with Store.open() as store:
        store.create_conversation()
        assert store.dialect == "sqlite"
    path = default_db_path()
    assert path.is_file() and path.is_relative_to(recursa_home)
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    """Every SQLite connection has WAL journaling, foreign keys on and a busy timeout."""
    from recursa.memory.engine import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        engine.dispose()


def test_unwritable_data_directory_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data directory that cannot be made raises DatabaseUnavailableError naming RECURSA_HOME."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RECURSA_HOME", str(blocker))  # the data dir would have to be inside a file
    with pytest.raises(DatabaseUnavailableError, match="RECURSA_HOME"):
        Store.open()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_data_directory_names_the_fix(tmp_path: Path) -> None:
    """A data directory without write permission raises DatabaseUnavailableError."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(DatabaseUnavailableError, match="writable"):
            Store.open(f"sqlite:///{folder / 'x.db'}")
    finally:
        folder.chmod(0o700)


def test_corrupt_database_file_names_the_fix(tmp_path: Path) -> None:
    """A file that is not a SQLite database raises DatabaseUnavailableError: move it aside."""
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is certainly not a database " * 500)
    with pytest.raises(DatabaseUnavailableError, match="corrupt") as caught:
        Store.open(f"sqlite:///{path}")
    assert "Move it aside" in str(caught.value)


def test_database_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    """A database path naming a folder raises DatabaseUnavailableError."""
    with pytest.raises(DatabaseUnavailableError, match="directory"):
        Store.open(f"sqlite:///{tmp_path}")


def test_unreachable_postgres_server_names_the_fix() -> None:
    """A PostgreSQL URL with nothing listening raises DatabaseUnavailableError, no driver error."""
    with pytest.raises(DatabaseUnavailableError, match="Cannot reach"):
        Store.open("postgresql+psycopg://nobody@127.0.0.1:1/none")


@pytest.mark.parametrize("url", ["not a url", "mysql://x@localhost/db"])
def test_bad_or_unsupported_url_is_refused(url: str) -> None:
    """Garbage or an unsupported database URL raises DatabaseUnavailableError naming the formats."""
    with pytest.raises(DatabaseUnavailableError, match="sqlite"):
        Store.open(url)


def test_invalid_input_error_is_also_a_value_error() -> None:
    """Callers that catch ValueError also catch the store's input errors."""
    assert issubclass(InvalidInputError, ValueError)
