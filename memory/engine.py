"""Engine factory for the store: SQLite PRAGMAs, PostgreSQL options, and error translation.

`make_engine(url)` returns a configured engine (nothing is created at import);
`translate_errors(url)` turns driver errors into `RecursaError`s that name the fix.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recursa.memory.errors import (
    DatabaseUnavailableError,
    DatabaseUrlError,
    InvalidInputError,
    StoreError,
)
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

# How long a SQLite writer waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option that makes a SQLite transaction start with BEGIN IMMEDIATE.
SQLITE_IMMEDIATE = "recursa_sqlite_immediate"


FORMATS = "sqlite:///path/to/file.db or postgresql+psycopg://user@host:5432/dbname"


def parse_url(url: str) -> URL:
    """Parse and check a database URL before anything connects.

    DatabaseUrlError (a ConfigError too) naming the accepted formats when it is
    empty, unparsable, of another database, has a bad port, or is a PostgreSQL
    URL that names no database (which would silently use the server's default one).
    """
    if not isinstance(url, str) or not url.strip():
        raise DatabaseUrlError(f"The database URL is empty. Use {FORMATS} (RECURSA_DB_URL).")
    try:
        parsed = make_url(url)
        port = parsed.port
    except (ArgumentError, ValueError) as exc:
        raise DatabaseUrlError(
            f"Cannot parse the database URL {_shown(url)!r} ({exc}). Use {FORMATS} "
            "(RECURSA_DB_URL)."
        ) from exc
    if port is not None and not 1 <= port <= 65535:
        raise DatabaseUrlError(
            f"The database URL {safe_url(parsed)} has port {port}: a port is from 1 to 65535."
        )
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseUrlError(
            f"Unsupported database {parsed.get_backend_name()!r} in {safe_url(parsed)}: "
            "recursa supports sqlite:/// and postgresql+psycopg:// URLs."
        )
    if parsed.get_backend_name() == "postgresql" and not (parsed.database or "").strip():
        raise DatabaseUrlError(
            f"The PostgreSQL URL {safe_url(parsed)} names no database, so the server's default "
            "one would be used: add it, e.g. postgresql+psycopg://user@host:5432/recursa."
        )
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the driver recursa declares (the `postgres` extra), not psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _shown(url: str) -> str:
    """An unparsable URL for a message: whatever looks like a password hidden."""
    import re

    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def safe_url(url: URL | str) -> str:
    """The URL with any password hidden, for messages."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def make_engine(url: str | URL) -> Engine:
    """A configured engine for a sqlite:/// or postgresql+psycopg:// URL."""
    parsed = parse_url(url) if isinstance(url, str) else url
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        return create_engine(
            parsed,
            # Fail fast on an unreachable server instead of waiting on the OS default.
            connect_args={"connect_timeout": 10},
            pool_pre_ping=True,
        )
    except NoSuchModuleError as exc:
        raise DatabaseUnavailableError(
            f"No driver for {parsed.drivername}: install it with pip install 'recursa[postgres]'."
        ) from exc
    except ModuleNotFoundError as exc:
        raise DatabaseUnavailableError(
            f"The database driver for {parsed.drivername} is not installed ({exc.name}): "
            "pip install 'recursa[postgres]'."
        ) from exc


def _sqlite_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {}
    if sqlite_path(url) is None:
        # One shared connection, or every checkout would see its own empty database.
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself; pysqlite's own
        # implicit transactions would defeat BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # WAL: readers never block the writer and the writer never blocks readers.
            cursor.execute("PRAGMA journal_mode=WAL")
            # SQLite leaves foreign keys off by default; cascades and references need them.
            cursor.execute("PRAGMA foreign_keys=ON")
            # Wait for another process's write lock instead of failing with "database is locked".
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that reads
        # and then writes can fail with SQLITE_BUSY without waiting at all.
        immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def describe_dbapi_error(url: URL, exc: DBAPIError) -> StoreError:
    """A RecursaError naming the fix for a driver error raised while opening or using `url`."""
    shown = safe_url(url)
    original = str(exc.orig) if exc.orig is not None else str(exc)
    first_line = original.strip().splitlines()[0] if original.strip() else type(exc).__name__
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        lowered = original.lower()
        if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
            return DatabaseUnavailableError(
                f"The database file {path} is corrupt or not a SQLite database ({first_line}). "
                "Move it aside (recursa will create a new one) or restore it from a backup."
            )
        if "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
            return DatabaseUnavailableError(
                f"Cannot open or write the database file {path} ({first_line}). Make its folder "
                "writable, or set RECURSA_HOME or RECURSA_DB_URL to a writable location."
            )
        if "disk is full" in lowered or "disk i/o error" in lowered:
            return DatabaseUnavailableError(
                f"The disk holding the database {path} is full or failing ({first_line}); "
                "nothing was changed. Free some space (SQLite needs room even to delete: "
                "its journal is written first) and run the command again."
            )
        if "locked" in lowered or "busy" in lowered:
            return DatabaseUnavailableError(
                f"The database {path} stayed locked by another process for "
                f"{SQLITE_BUSY_TIMEOUT_MS // 1000} s ({first_line}). Close the other recursa "
                "process or retry."
            )
    if isinstance(exc, IntegrityError):
        return InvalidInputError(f"The change was refused by the database ({first_line}).")
    if exc.connection_invalidated or _is_connect_error(exc):
        return DatabaseUnavailableError(
            f"Cannot reach the database at {shown} ({first_line}). Check that the server is "
            "running and the URL (RECURSA_DB_URL) is right."
        )
    return StoreError(f"Database error on {shown}: {first_line}")


def _is_connect_error(exc: DBAPIError) -> bool:
    name = type(exc.orig).__name__ if exc.orig is not None else ""
    return name in ("OperationalError", "InterfaceError") and (
        "connect" in str(exc.orig).lower() or "server" in str(exc.orig).lower()
    )


@contextmanager
def translate_errors(url: URL) -> Iterator[None]:
    """Re-raise driver errors inside the block as RecursaErrors naming the fix."""
    try:
        yield
    except DBAPIError as exc:
        raise describe_dbapi_error(url, exc) from exc
