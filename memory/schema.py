"""Schema versioning for the store: run the shipped Alembic migrations, check revisions.

`upgrade(url)`, `current_revision(url)` and `head_revision()` are what
`recursa db upgrade|current` call; `ensure_schema(engine, ...)` is what
`Store.open` calls. The migrations live in the `recursa.migrations` package
and are found through its location, so no alembic.ini is needed.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from recursa.memory.engine import (
    SQLITE_IMMEDIATE,
    make_engine,
    parse_url,
    safe_url,
    translate_errors,
)
from recursa.memory.errors import SchemaError
from recursa.memory.locations import default_db_url
from sqlalchemy import Connection, Engine, inspect, text

# Tables and indexes made by migrations but not described by the ORM models:
# the full-text search objects. Autogenerate comparisons must skip them.
FTS_PREFIXES = ("messages_fts", "summaries_fts", "ix_messages_fts", "ix_summaries_fts")

# Key of the PostgreSQL advisory lock that serializes concurrent upgrades.
_PG_MIGRATION_LOCK = 0x7265637572

SchemaState = Literal["current", "behind", "empty"]


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic filter: leave the full-text search objects out of comparisons."""
    return not (name is not None and name.startswith(FTS_PREFIXES))


def alembic_config() -> Config:
    """An Alembic Config pointing at the migrations shipped in the package."""
    config = Config()
    config.set_main_option("script_location", str(files("recursa.migrations")))
    return config


def head_revision() -> str:
    """The newest schema revision this recursa knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise SchemaError("No migrations found in recursa.migrations: the install is broken.")
    return head


def is_known_revision(revision: str) -> bool:
    """Whether this recursa ships the migration `revision` (False: a newer recursa made it)."""
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        return False
    return True


def _revision_of(conn: Connection) -> str | None:
    """The recorded revision; SchemaError when the record itself is damaged.

    Two rows in alembic_version, or none while recursa's tables exist, would
    otherwise end in Alembic's "more than one head" or in a failed CREATE TABLE.
    """
    url_text = safe_url(conn.engine.url)
    try:
        revision = MigrationContext.configure(conn).get_current_revision()
    except CommandError as exc:
        rows = sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        raise SchemaError(
            f"The database at {url_text} records {len(rows)} schema revisions at once "
            f"({', '.join(rows)} in its alembic_version table); it must record one. Delete "
            f"the rows that are not its real revision (usually all but the newest, {rows[-1]}), "
            "or restore the database from a backup."
        ) from exc
    if revision is None and inspect(conn).has_table("conversations"):
        raise SchemaError(
            f"The database at {url_text} has recursa's tables but no schema revision (its "
            "alembic_version table is empty or missing), so recursa cannot tell which "
            f"migrations it needs. If its schema is the newest ({head_revision()}), record it "
            "with: INSERT INTO alembic_version VALUES ('" + head_revision() + "'); otherwise "
            "restore the database from a backup or move it aside."
        )
    return revision


def schema_state(conn: Connection, url_text: str) -> SchemaState:
    """Whether the database is at head, behind it, or empty; SchemaError if it is newer."""
    current = _revision_of(conn)
    if current is None:
        return "empty"
    script = ScriptDirectory.from_config(alembic_config())
    try:
        script.get_revision(current)
    except CommandError as exc:
        raise SchemaError(
            f"The database at {url_text} has schema revision {current!r}, which this "
            "recursa does not know: it was made by a newer recursa. Upgrade recursa "
            "(pip install -U recursa) or use another database (RECURSA_DB_URL)."
        ) from exc
    return "current" if current == script.get_current_head() else "behind"


def _raw_pragma(conn: Connection, pragma: str) -> None:
    # On the driver connection, outside SQLAlchemy's transaction (which would make it a no-op).
    conn.connection.driver_connection.execute(f"PRAGMA {pragma}")  # type: ignore[union-attr]


def _upgrade_engine(engine: Engine) -> str:
    """Run every pending migration in one transaction; returns the revision now current."""
    url = engine.url
    config = alembic_config()
    with translate_errors(url), engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # Batch migrations copy and drop tables; with foreign keys on, dropping
            # a table would cascade-delete its children's rows. The PRAGMA is a
            # no-op inside a transaction, so it is set before BEGIN.
            _raw_pragma(conn, "foreign_keys=OFF")
        conn = conn.execution_options(**{SQLITE_IMMEDIATE: True})
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # Two processes opening a fresh database must not both migrate it.
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                schema_state(conn, safe_url(url))  # refuses a newer schema before touching it
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                revision = _revision_of(conn)
        finally:
            if conn.dialect.name == "sqlite":
                _raw_pragma(conn, "foreign_keys=ON")
    if revision is None:  # pragma: no cover
        raise SchemaError("The upgrade finished without a schema revision: the install is broken.")
    return revision


def ensure_schema(engine: Engine, *, upgrade: bool) -> None:
    """Bring the database to head (or check it is there when `upgrade` is False)."""
    url = engine.url
    with translate_errors(url), engine.connect() as conn:
        state = schema_state(conn, safe_url(url))
        conn.rollback()
    if state == "current":
        return
    if not upgrade:
        raise SchemaError(
            f"The database at {safe_url(url)} is "
            f"{'empty' if state == 'empty' else 'at an older schema'}: "
            "run `recursa db upgrade` (or open the store with upgrade=True)."
        )
    _upgrade_engine(engine)


def _engine_for(url: str | None) -> Engine:
    from recursa.memory.store import prepare_location  # the store owns "make the data dir"

    parsed = parse_url(url or default_db_url())
    prepare_location(parsed)
    return make_engine(parsed)


def upgrade(url: str | None = None) -> str:
    """Upgrade the database at `url` (default: the configured one) to head; returns it."""
    engine = _engine_for(url)
    try:
        return _upgrade_engine(engine)
    finally:
        engine.dispose()


def current_revision(url: str | None = None) -> str | None:
    """The database's schema revision, or None when it has no schema yet."""
    from recursa.memory.engine import sqlite_path

    parsed = parse_url(url or default_db_url())
    path = sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
    if path is not None and not path.exists():
        return None  # asking must not create the file
    engine = _engine_for(url)
    try:
        with translate_errors(engine.url), engine.connect() as conn:
            return _revision_of(conn)
    finally:
        engine.dispose()
