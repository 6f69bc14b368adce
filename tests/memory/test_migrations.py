"""Alembic migrations: one head, upgrade from empty, downgrade/upgrade with data, no drift."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from recursa.memory import SchemaError, Store, current_revision, head_revision, upgrade
from recursa.memory.engine import make_engine
from recursa.memory.models import Base
from recursa.memory.schema import alembic_config, include_name
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError

TABLES = {
    "conversations",
    "messages",
    "message_token_counts",
    "summaries",
    "prompt_traces",
    "message_embeddings",
}


@contextmanager
def connection(url: str) -> Iterator[Connection]:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def run_alembic(url: str, action: str, target: str) -> None:
    config = alembic_config()
    with connection(url) as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, target)


def fts_objects(conn: Connection) -> set[str]:
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT name FROM sqlite_master WHERE name LIKE '%fts%'"))
    else:
        rows = conn.execute(text("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%fts'"))
    return {row[0] for row in rows}


def test_migrations_have_a_single_head() -> None:
    """The shipped migrations form one line: exactly one head, which head_revision() reports."""
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    assert script.get_heads()[0] == head_revision()


def test_upgrade_from_empty_creates_tables_and_search_index(db_url: str) -> None:
    """Upgrading an empty database makes every table and the full-text index, at head."""
    assert current_revision(db_url) is None
    assert upgrade(db_url) == head_revision()
    assert current_revision(db_url) == head_revision()
    with connection(db_url) as conn:
        assert set(inspect(conn).get_table_names()) >= TABLES
        expected = (
            {"messages_fts", "summaries_fts"}
            if conn.dialect.name == "sqlite"
            else {"ix_messages_fts", "ix_summaries_fts"}
        )
        assert expected <= fts_objects(conn)
    assert upgrade(db_url) == head_revision()  # idempotent


def test_migrated_schema_matches_the_orm_models(db_url: str) -> None:
    """Autogenerate finds no difference between the migrated schema and the ORM metadata."""
    upgrade(db_url)
    with connection(db_url) as conn:
        context = MigrationContext.configure(
            conn, opts={"include_name": include_name, "compare_type": True}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_to_base_and_upgrade_again_with_data(db_url: str) -> None:
    """With rows in every table, downgrade to base removes the schema and upgrade rebuilds it."""
    with Store.open(db_url) as store:
        conv = store.create_conversation(title="t")
        msg = store.append_message(conv.id, "user", "persistent walrus")
        store.store_token_counts("t", {msg.id: 2})
        store.add_summary(
            conv.id,
            content="walrus summary",
            covers_from_seq=1,
            covers_through_seq=1,
            parent_id=None,
            token_count=1,
            tokenizer_id="t",
            model="m",
            prompt_version="v",
        )
        store.add_reply(conv.id, "ok")
    run_alembic(db_url, "downgrade", "base")
    assert current_revision(db_url) is None
    with connection(db_url) as conn:
        assert not TABLES & set(inspect(conn).get_table_names())
        assert fts_objects(conn) == set()
    run_alembic(db_url, "upgrade", "head")
    with Store.open(db_url, upgrade=False) as store:
        conv = store.create_conversation()
        msg = store.append_message(conv.id, "user", "walrus again")
        assert msg.seq == 1
        assert [hit.id for hit in store.search("walrus")] == [msg.id]


def test_open_upgrades_an_empty_database_unless_told_not_to(db_url: str) -> None:
    """Store.open(upgrade=False) refuses a database behind head; Store.open() upgrades it."""
    with pytest.raises(SchemaError, match="recursa db upgrade"):
        Store.open(db_url, upgrade=False)
    with Store.open(db_url) as store:
        store.create_conversation()
    assert current_revision(db_url) == head_revision()


def test_a_database_from_a_newer_recursa_is_refused(db_url: str) -> None:
    """A schema revision this recursa does not know (made by a newer one) raises SchemaError."""
    upgrade(db_url)
    with connection(db_url) as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfacef00d'"))
    for call in (lambda: Store.open(db_url), lambda: upgrade(db_url)):
        with pytest.raises(SchemaError, match="newer recursa"):
            call()


def test_embeddings_migration_goes_down_and_up_with_data(db_url: str) -> None:
    """Down from 0003 drops only the vectors (messages stay); up again, the table works at once."""
    with Store.open(db_url) as store:
        conv = store.create_conversation()
        msg = store.append_message(conv.id, "user", "persistent walrus")
        store.add_embeddings("test:e", 2, {msg.id: b"\x00" * 8})
    run_alembic(db_url, "downgrade", "0002")
    assert current_revision(db_url) == "0002"
    with connection(db_url) as conn:
        tables = set(inspect(conn).get_table_names())
        assert "message_embeddings" not in tables and "messages" in tables
    run_alembic(db_url, "upgrade", "head")
    with Store.open(db_url, upgrade=False) as store:
        assert store.get_message(msg.id).content == "persistent walrus"
        assert store.count_embeddings(conv.id, "test:e") == 0
        assert [m.id for m in store.messages_without_embedding(conv.id, "test:e", limit=5)] == [
            msg.id
        ]
        store.add_embeddings("test:e", 2, {msg.id: b"\x01" * 8})
        assert [e.message_id for e in store.embeddings(conv.id, "test:e")] == [msg.id]


def test_embeddings_table_refuses_a_vector_of_the_wrong_size(db_url: str) -> None:
    """The vector_size check holds even for a write that bypasses the store's validation."""
    with Store.open(db_url) as store:
        conv = store.create_conversation()
        msg = store.append_message(conv.id, "user", "x")
    with pytest.raises(IntegrityError), connection(db_url) as conn:
        conn.execute(
            text(
                "INSERT INTO message_embeddings "
                "(message_id, embedder_id, conversation_id, seq, dim, vector, created_at) "
                "VALUES (:m, 'e', :c, 1, 3, :v, CURRENT_TIMESTAMP)"
            ),
            {"m": msg.id, "c": conv.id, "v": b"\x00" * 8},
        )
