"""Recall's "any" search ranks a bounded set of rows and still returns the best ones.

Words found in more than COMMON_TERM_CAP of the searched messages are too
common to rank all their matches: a rare word among them must still come
first, and when every word is that common the newest matches are the
candidates. Each test runs on SQLite and PostgreSQL, before and after the
database is analyzed: PostgreSQL picks its plans from planner statistics, and
once it has them it reads common words' newest matches slice by slice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from recursa.memory import NewMessage, SearchHit, Store
from recursa.memory.engine import make_engine
from recursa.memory.search import COMMON_TERM_CAP, RECENT_MATCHES, RECENT_SLICE
from sqlalchemy import Engine, event, text

WINDOW = 50


def analyze(db_url: str) -> None:
    """Give the database planner statistics, as autovacuum would after an import."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


@contextmanager
def statements_sent() -> Iterator[list[str]]:
    """The SQL text of every statement sent while open."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def recall(store: Store, conversation_id: int, query: str, limit: int) -> list[SearchHit]:
    """The hits recall's search returns for `query`, outside a WINDOW-message window."""
    through = store.get_conversation(conversation_id).last_seq - WINDOW
    hits = store.search(
        query,
        conversation_id=conversation_id,
        through_seq=through,
        limit=limit,
        include_summaries=False,
        match="any",
    )
    assert all(h.seq <= through for h in hits)
    return hits


@pytest.mark.parametrize("analyzed", [False, True], ids=["fresh", "analyzed"])
def test_rare_word_among_many_common_rows_returns_its_best_matches_first(
    store: Store, db_url: str, analyzed: bool
) -> None:
    """The messages holding the rare word come first, the one holding it most at the top."""
    conv = store.create_conversation()

    def common(n: int) -> None:
        rows = [
            NewMessage("user", f"the weather report from the garden, day {i}") for i in range(n)
        ]
        store.append_messages(conv.id, rows)

    common(3 * COMMON_TERM_CAP)
    best = store.append_message(
        conv.id, "user", "passport, passport: the passport is in the drawer"
    )
    common(3 * COMMON_TERM_CAP)
    other = store.append_message(conv.id, "assistant", "Your passport expires in May.")
    common(3 * COMMON_TERM_CAP)
    # The window: matches there are not recall candidates.
    store.append_messages(
        conv.id, [NewMessage("user", f"passport passport passport {i}") for i in range(WINDOW)]
    )
    if analyzed:
        analyze(db_url)
    hits = recall(store, conv.id, "weather report passport garden", limit=5)
    assert [h.id for h in hits] == [best.id, other.id]
    assert "[passport]" in hits[0].snippet


@pytest.mark.parametrize("analyzed", [False, True], ids=["fresh", "analyzed"])
def test_only_common_words_rank_exactly_the_newest_matches(
    store: Store, db_url: str, analyzed: bool
) -> None:
    """The candidates are the RECENT_MATCHES newest matches, however sparse they are."""
    conv = store.create_conversation()
    # Long ago, both words in every message: the best matches by word count, too old.
    store.append_messages(
        conv.id, [NewMessage("user", "weather garden weather garden") for _ in range(200)]
    )
    # Then one match in 40 messages, so that the newest RECENT_SLICE messages hold
    # fewer matches than the pool and PostgreSQL reads a second, longer slice.
    sparse = [
        NewMessage("user", f"weather note {i}" if i % 40 == 0 else f"nothing much {i}")
        for i in range(3_000)
    ]
    rows = store.append_messages(conv.id, sparse)
    store.append_messages(conv.id, [NewMessage("user", "weather garden now")] * WINDOW)
    matches = [r for r in rows if r.content.startswith("weather")]  # oldest first
    pool, outside = matches[-RECENT_MATCHES:], matches[-RECENT_MATCHES - 1]
    assert len(matches) > RECENT_MATCHES and rows[-1].seq - outside.seq > RECENT_SLICE
    # Both words: the best of the pool, and the best just outside it.
    inside = pool[RECENT_MATCHES // 2]
    store.update_message(inside.id, content="weather garden note")
    store.update_message(outside.id, content="weather garden weather garden note")
    if analyzed:
        analyze(db_url)
    with statements_sent() as sent:
        hits = [h.id for h in recall(store, conv.id, "garden weather", limit=10)]
    assert len(hits) == 10
    assert hits[0] == inside.id
    assert set(hits) <= {m.id for m in pool}
    if analyzed and db_url.startswith("postgresql"):
        assert any("WITH slice" in s for s in sent)  # the bounded plan was the one used
