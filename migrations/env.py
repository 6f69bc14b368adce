"""Alembic environment for recursa's store, configured in code (no alembic.ini needed).

`recursa.memory.schema` passes an open connection in `config.attributes["connection"]`;
run from the `alembic` command line instead, the URL comes from `sqlalchemy.url`
or RECURSA_DB_URL.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from recursa.memory.locations import default_db_url
from recursa.memory.models import Base
from recursa.memory.schema import include_name
from sqlalchemy import Connection

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place: batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=include_name,
        compare_type=True,
    )


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or default_db_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection: Any = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from recursa.memory.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or default_db_url())
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
