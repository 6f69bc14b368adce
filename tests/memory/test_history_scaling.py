"""Per-turn queries that must not grow with a conversation's history, on both databases.

Pinned messages come from a partial index (checked in the query plan), and recall's
"any" search ranks only informative words, or only the most recent matches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from recursa.memory import NewMessage, Store
from recursa.memory.engine import make_engine
from recursa.memory.schema import alembic_config
from recursa.memory.search import COMMON_TERM_CAP, RECENT_MATCHES
from sqlalchemy import Engine, event, inspect


@contextmanager
def captured_statements() -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement (with its parameters) that any engine sends while open."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        seen.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def query_plan(url: str, statement: str, parameters: Any) -> str:
    """The planner's plan for `statement`, as text."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            if conn.dialect.name == "sqlite":
                cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
                return "\n".join(str(row[-1]) for row in cursor.fetchall())
            # A test table is tiny, so a sequential scan would win on cost; with it
            # priced out, the partial index is chosen exactly when its predicate
            # matches the query's, which is what this checks.
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("EXPLAIN " + statement, parameters)
            return "\n".join(str(row[0]) for row in cursor.fetchall())
    finally:
        engine.dispose()


def test_pinned_messages_are_read_through_the_partial_index(store: Store, db_url: str) -> None:
    """The query Store.pinned_messages sends is planned on ix_messages_pinned."""
    conv = store.create_conversation()
    store.append_messages(
        conv.id, [NewMessage("user", f"note {i}", pinned=i % 10 == 0) for i in range(50)]
    )
    with captured_statements() as seen:
        pinned = store.pinned_messages(conv.id)
    assert [m.seq for m in pinned] == [1, 11, 21, 31, 41]
    statement, parameters = next((s, p) for s, p in seen if "pinned" in s and "FROM messages" in s)
    plan = query_plan(db_url, statement, parameters)
    assert "ix_messages_pinned" in plan, plan


def test_migration_0002_adds_and_removes_the_pinned_index_keeping_data(db_url: str) -> None:
    """Downgrading to 0001 drops only the pinned index; upgrading again restores it."""
    with Store.open(db_url) as store:
        conv = store.create_conversation()
        store.append_message(conv.id, "user", "keep me", pinned=True)

    def index_names() -> set[str]:
        engine = make_engine(db_url)
        try:
            return {ix["name"] for ix in inspect(engine).get_indexes("messages")}
        finally:
            engine.dispose()

    def alembic(action: str, target: str) -> None:
        config = alembic_config()
        engine = make_engine(db_url)
        try:
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                getattr(command, action)(config, target)
        finally:
            engine.dispose()

    assert "ix_messages_pinned" in index_names()
    alembic("downgrade", "0001")
    assert "ix_messages_pinned" not in index_names()
    alembic("upgrade", "head")
    assert "ix_messages_pinned" in index_names()
    with Store.open(db_url, upgrade=False) as store:
        assert [m.content for m in store.pinned_messages(conv.id)] == ["keep me"]


def test_recall_finds_a_rare_word_among_very_common_ones(store: Store) -> None:
    """A word in more than COMMON_TERM_CAP messages does not drown a rare one."""
    conv = store.create_conversation()
    common = [NewMessage("user", f"the weather report {i}") for i in range(COMMON_TERM_CAP + 1)]
    store.append_messages(conv.id, common[:100])
    needle = store.append_message(conv.id, "user", "my passport is in the blue drawer")
    store.append_messages(conv.id, common[100:])
    store.append_messages(conv.id, [NewMessage("user", "weather again") for _ in range(20)])
    last = store.get_conversation(conv.id).last_seq
    hits = store.search(
        "weather report passport",
        conversation_id=conv.id,
        through_seq=last,
        limit=5,
        include_summaries=False,
        match="any",
    )
    assert [h.id for h in hits] == [needle.id]
    assert "[passport]" in hits[0].snippet


def test_recall_with_only_common_words_ranks_the_most_recent_matches(store: Store) -> None:
    """When every word is too common, hits come from the newest RECENT_MATCHES matches."""
    conv = store.create_conversation()
    old = store.append_messages(
        conv.id, [NewMessage("user", "weather weather weather weather") for _ in range(30)]
    )
    store.append_messages(
        conv.id, [NewMessage("user", f"weather note {i}") for i in range(COMMON_TERM_CAP)]
    )
    recent = store.append_messages(
        conv.id, [NewMessage("user", f"weather later {i}") for i in range(RECENT_MATCHES)]
    )
    hits = store.search(
        "weather", conversation_id=conv.id, limit=10, include_summaries=False, match="any"
    )
    assert len(hits) == 10
    # The old messages match "better" (the word four times) but are past the recent matches.
    assert {h.id for h in hits} <= {m.id for m in recent}
    assert not {h.id for h in hits} & {m.id for m in old}
    # through_seq moves the window back: the old ones are then the most recent.
    earlier = store.search(
        "weather",
        conversation_id=conv.id,
        through_seq=old[-1].seq,
        limit=10,
        include_summaries=False,
        match="any",
    )
    assert {h.id for h in earlier} <= {m.id for m in old} and len(earlier) == 10


def test_all_match_search_still_ranks_every_match(store: Store) -> None:
    """User search ("all") is unchanged: the best match wins however old it is."""
    conv = store.create_conversation()
    best = store.append_message(conv.id, "user", "weather weather weather weather")
    store.append_messages(
        conv.id, [NewMessage("user", f"weather note {i}") for i in range(COMMON_TERM_CAP + 5)]
    )
    hits = store.search("weather", conversation_id=conv.id, limit=3, include_summaries=False)
    assert hits[0].id == best.id


def test_probe_counts_are_per_conversation(store: Store) -> None:
    """A word common in another conversation is still informative where it is rare."""
    busy = store.create_conversation()
    store.append_messages(
        busy.id, [NewMessage("user", f"lighthouse keeper {i}") for i in range(COMMON_TERM_CAP + 5)]
    )
    quiet = store.create_conversation()
    filler = [NewMessage("user", f"ordinary day {i}") for i in range(COMMON_TERM_CAP + 5)]
    store.append_messages(quiet.id, filler)
    mention = store.append_message(quiet.id, "user", "we visited a lighthouse")
    hits = store.search(
        "ordinary lighthouse", conversation_id=quiet.id, include_summaries=False, match="any"
    )
    assert [h.id for h in hits] == [mention.id]
