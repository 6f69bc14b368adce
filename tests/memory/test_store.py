"""The Store API on SQLite and PostgreSQL: conversations, messages, summaries, traces, search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from recursa.memory import (
    UNSET,
    CompactionConflict,
    NewMessage,
    NewTrace,
    NotFoundError,
    Store,
)


def test_conversation_lifecycle_create_get_update_archive(store: Store) -> None:
    """Create, read, rename, archive and re-settings a conversation; fields round-trip."""
    conv = store.create_conversation(
        title="First",
        system_prompt="Be brief.",
        model="m",
        kind="composition",
        settings={"budget": {"reply": 256}, "tags": ["a", "b"]},
    )
    assert conv.id > 0 and conv.kind == "composition" and conv.last_seq == 0
    assert conv.created_at.tzinfo is not None and conv.created_at.utcoffset() == timedelta(0)
    assert store.get_conversation(conv.id) == conv

    renamed = store.update_conversation(conv.id, title="Second")
    assert renamed.title == "Second" and renamed.system_prompt == "Be brief."
    assert renamed.settings == {"budget": {"reply": 256}, "tags": ["a", "b"]}
    cleared = store.update_conversation(conv.id, title=None, settings={}, archived=True)
    assert cleared.title is None and cleared.settings == {} and cleared.archived
    assert store.update_conversation(conv.id, model=UNSET).model == "m"


def test_list_conversations_orders_by_activity_and_filters(store: Store) -> None:
    """Listing is newest activity first, hides archived ones unless asked, filters kind, pages."""
    a = store.create_conversation(title="a")
    store.create_conversation(title="b", kind="composition")
    c = store.create_conversation(title="c")
    store.append_message(a.id, "user", "bump a")  # a becomes the most recently active
    store.update_conversation(c.id, archived=True)
    assert [x.title for x in store.list_conversations()] == ["a", "b"]
    # Archiving is a change too: c moves to the top of the full list.
    assert [x.title for x in store.list_conversations(include_archived=True)] == ["c", "a", "b"]
    assert [x.title for x in store.list_conversations(kind="composition")] == ["b"]
    assert [x.title for x in store.list_conversations(limit=1, offset=1)] == ["b"]
    assert store.list_conversations()[0].message_count == 1


def test_messages_get_sequence_numbers_and_round_trip(store: Store) -> None:
    """Appends number messages 1, 2, 3 per conversation and return what was stored."""
    one = store.create_conversation()
    two = store.create_conversation()
    meta = {"source": "import", "nested": {"x": [1, 2.5, None, True]}, "ünï": "çödé"}
    m1 = store.append_message(one.id, "user", "hello", metadata=meta)
    m2 = store.append_message(one.id, "assistant", "hi", status="interrupted", pinned=True)
    other = store.append_message(two.id, "user", "elsewhere")
    assert (m1.seq, m2.seq, other.seq) == (1, 2, 1)
    assert store.get_message(m1.id) == m1 and m1.metadata == meta
    assert store.get_message(m2.id).status == "interrupted"
    assert store.get_conversation(one.id).last_seq == 2
    assert [m.id for m in store.pinned_messages(one.id)] == [m2.id]


def test_append_messages_keeps_given_timestamps_exactly(store: Store) -> None:
    """An import keeps each message's original time (any offset; read back as the UTC instant)."""
    conv = store.create_conversation()
    t1 = datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    t2 = datetime(2021, 6, 7, 8, 9, 10, 654321, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    stored = store.append_messages(
        conv.id,
        [
            NewMessage("user", "old question", created_at=t1),
            NewMessage("assistant", "old answer", created_at=t2, metadata={"k": "v"}),
        ],
    )
    assert [m.seq for m in stored] == [1, 2]
    fetched = store.messages(conv.id)
    assert fetched[0].created_at == t1 and fetched[0].created_at.tzinfo == UTC
    assert fetched[1].created_at == t2 and fetched[1].created_at.utcoffset() == timedelta(0)
    assert fetched == stored


def test_window_queries_after_through_limit_and_order(store: Store) -> None:
    """messages() returns the verbatim window after a seq, bounded, in either order."""
    conv = store.create_conversation()
    ids = [store.append_message(conv.id, "user", f"m{i}").id for i in range(1, 11)]
    assert [m.seq for m in store.messages(conv.id, after_seq=7)] == [8, 9, 10]
    assert [m.seq for m in store.messages(conv.id, after_seq=2, through_seq=4)] == [3, 4]
    assert [m.seq for m in store.messages(conv.id, limit=2)] == [1, 2]
    assert [m.seq for m in store.messages(conv.id, limit=3, newest_first=True)] == [10, 9, 8]
    picked = store.messages_by_ids([ids[5], ids[1], ids[8]])
    assert [m.seq for m in picked] == [2, 6, 9]


def test_update_message_fields_and_stale_token_counts(store: Store) -> None:
    """Editing content drops its cached token counts; pin, rating, status, metadata update."""
    conv = store.create_conversation()
    msg = store.append_message(conv.id, "assistant", "draft")
    store.store_token_counts("tok", {msg.id: 5})
    updated = store.update_message(
        msg.id, pinned=True, rating=-1, status="error", metadata={"a": 1}
    )
    assert (updated.pinned, updated.rating, updated.status, updated.metadata) == (
        True,
        -1,
        "error",
        {"a": 1},
    )
    assert store.cached_token_counts([msg.id], "tok") == {msg.id: 5}
    edited = store.update_message(msg.id, content="final text", rating=None)
    assert edited.content == "final text" and edited.rating is None
    assert store.cached_token_counts([msg.id], "tok") == {}
    assert [hit.id for hit in store.search("final")] == [msg.id]  # the search index follows
    assert store.search("draft") == []


def test_token_counts_cached_per_tokenizer_and_window_total(store: Store) -> None:
    """Counts are stored per (message, tokenizer); the window total sums stored numbers only."""
    conv = store.create_conversation()
    msgs = [store.append_message(conv.id, "user", f"text {i}") for i in range(5)]
    store.store_token_counts("a", {m.id: 10 + m.seq for m in msgs[:4]})
    store.store_token_counts("b", {msgs[0].id: 99})
    store.store_token_counts("a", {msgs[0].id: 1})  # replaces
    assert store.cached_token_counts([m.id for m in msgs], "a") == {
        msgs[0].id: 1,
        msgs[1].id: 12,
        msgs[2].id: 13,
        msgs[3].id: 14,
    }
    assert store.cached_token_counts([msgs[0].id], "b") == {msgs[0].id: 99}
    assert store.window_token_total(conv.id, 0, "a") == 1 + 12 + 13 + 14
    assert store.window_token_total(conv.id, 2, "a") == 13 + 14  # seq 5 is uncached: 0
    assert store.window_token_total(conv.id, 0, "none") == 0


def test_summary_chain_links_and_latest(store: Store) -> None:
    """Summaries chain through parent ids with growing depth; the latest is the chain's head."""
    conv = store.create_conversation()
    for i in range(6):
        store.append_message(conv.id, "user", f"turn {i}")
    assert store.latest_summary(conv.id) is None and store.summary_chain(conv.id) == []
    common = {"token_count": 7, "tokenizer_id": "tok", "model": "m", "prompt_version": "v1"}
    s1 = store.add_summary(
        conv.id,
        content="first",
        covers_from_seq=1,
        covers_through_seq=2,
        parent_id=None,
        metadata={"chunks": 1},
        **common,
    )
    s2 = store.add_summary(
        conv.id,
        content="second",
        covers_from_seq=3,
        covers_through_seq=4,
        parent_id=s1.id,
        **common,
    )
    assert (s1.depth, s2.depth, s2.parent_id) == (1, 2, s1.id)
    assert store.latest_summary(conv.id) == s2
    assert [s.id for s in store.summary_chain(conv.id)] == [s2.id, s1.id]
    assert store.get_summary(s1.id).metadata == {"chunks": 1}


def test_add_summary_refuses_a_stale_parent_so_compaction_runs_once(store: Store) -> None:
    """A second compaction built on the same parent raises CompactionConflict and stores nothing."""
    conv = store.create_conversation()
    for i in range(6):
        store.append_message(conv.id, "user", f"turn {i}")
    common = {"token_count": 1, "tokenizer_id": None, "model": None, "prompt_version": None}
    first = store.add_summary(
        conv.id, content="a", covers_from_seq=1, covers_through_seq=3, parent_id=None, **common
    )
    with pytest.raises(CompactionConflict):
        store.add_summary(
            conv.id, content="b", covers_from_seq=1, covers_through_seq=3, parent_id=None, **common
        )
    with pytest.raises(CompactionConflict):  # coverage must move forward
        store.add_summary(
            conv.id,
            content="c",
            covers_from_seq=1,
            covers_through_seq=3,
            parent_id=first.id,
            **common,
        )
    assert store.summary_chain(conv.id) == [first]


def test_add_reply_stores_message_and_trace_together(store: Store) -> None:
    """A reply and its prompt trace are stored in one step and read back by the reply's id."""
    conv = store.create_conversation()
    user = store.append_message(conv.id, "user", "question")
    summary = store.add_summary(
        conv.id,
        content="s",
        covers_from_seq=1,
        covers_through_seq=1,
        parent_id=None,
        token_count=1,
        tokenizer_id="t",
        model="m",
        prompt_version="v",
    )
    trace = NewTrace(
        model="m",
        budget=2000,
        total_tokens=150,
        user_message_id=user.id,
        summary_id=summary.id,
        recalled_ids=[user.id],
        window_ids=[user.id],
        plan={"sections": [{"name": "system", "tokens": 10}]},
        params={"temperature": 0.0},
        usage={"prompt_tokens": 150},
        timings={"ttft_s": 0.25},
        notes=["ok"],
    )
    reply, stored = store.add_reply(conv.id, "answer", trace=trace, metadata={"finish": "stop"})
    assert reply.role == "assistant" and reply.seq == 2 and reply.metadata == {"finish": "stop"}
    assert stored is not None and stored.message_id == reply.id
    assert store.get_trace(reply.id) == stored
    assert stored.plan == {"sections": [{"name": "system", "tokens": 10}]}
    assert stored.recalled_ids == [user.id] and stored.notes == ["ok"]
    assert store.traces(conv.id) == [stored]
    bare, none = store.add_reply(conv.id, "", status="interrupted")
    assert none is None and bare.content == "" and bare.status == "interrupted"
    with pytest.raises(NotFoundError):
        store.get_trace(user.id)


def test_add_reply_with_a_bad_trace_writes_nothing(store: Store) -> None:
    """A trace naming a missing summary fails the whole reply: no message is left behind."""
    conv = store.create_conversation()
    with pytest.raises(NotFoundError):
        store.add_reply(
            conv.id, "answer", trace=NewTrace(model="m", budget=1, total_tokens=1, summary_id=12345)
        )
    assert store.messages(conv.id) == [] and store.get_conversation(conv.id).last_seq == 0


def test_delete_conversation_removes_everything_it_owns(store: Store) -> None:
    """Deleting a conversation removes its messages, counts, summaries, traces, search hits."""
    keep = store.create_conversation()
    kept = store.append_message(keep.id, "user", "zebra stays")
    conv = store.create_conversation()
    msg = store.append_message(conv.id, "user", "zebra goes")
    store.store_token_counts("t", {msg.id: 3})
    store.add_summary(
        conv.id,
        content="zebra summary",
        covers_from_seq=1,
        covers_through_seq=1,
        parent_id=None,
        token_count=1,
        tokenizer_id="t",
        model="m",
        prompt_version="v",
    )
    reply, _ = store.add_reply(
        conv.id, "ok", trace=NewTrace(model="m", budget=1, total_tokens=1, user_message_id=msg.id)
    )
    store.delete_conversation(conv.id)
    for call in (
        lambda: store.get_conversation(conv.id),
        lambda: store.get_message(msg.id),
        lambda: store.get_trace(reply.id),
        lambda: store.delete_conversation(conv.id),
    ):
        with pytest.raises(NotFoundError):
            call()
    assert [h.id for h in store.search("zebra")] == [kept.id]
    assert store.cached_token_counts([msg.id], "t") == {}


def test_search_ranks_filters_and_includes_summaries(store: Store) -> None:
    """Search finds words in any form, ranks denser matches first, filters, and covers summaries."""
    a = store.create_conversation()
    b = store.create_conversation()
    store.append_message(a.id, "user", "The weather is nice today.")
    dense = store.append_message(
        a.id, "assistant", "Rain, rain and more rain: rainy weather all week."
    )
    store.append_message(a.id, "user", "Let's talk about cooking pasta instead.")
    other = store.append_message(b.id, "user", "Rain in another conversation.")
    summary = store.add_summary(
        a.id,
        content="They discussed rain and weather.",
        covers_from_seq=1,
        covers_through_seq=2,
        parent_id=None,
        token_count=5,
        tokenizer_id="t",
        model="m",
        prompt_version="v",
    )
    hits = store.search("rain")
    assert hits[0].id == dense.id and hits[0].kind == "message"
    assert {(h.kind, h.id) for h in hits} == {
        ("message", dense.id),
        ("message", other.id),
        ("summary", summary.id),
    }
    assert all(h.rank >= hits[-1].rank for h in hits)
    assert "[" in hits[0].snippet and "]" in hits[0].snippet
    only_a = store.search("rain", conversation_id=a.id, include_summaries=False)
    assert [h.id for h in only_a] == [dense.id]
    assert store.search("weather pasta") == []  # "all": no message has both words
    assert {h.id for h in store.search("weather pasta", match="any", include_summaries=False)} == {
        m.id for m in store.messages(a.id)
    }
    assert store.search("cooking", conversation_id=a.id, through_seq=2) == []
    assert len(store.search("rain", limit=1)) == 1


@pytest.mark.parametrize(
    "query",
    [
        '"',
        'rain"',
        "NEAR(rain weather)",
        "rain*",
        "rain OR",
        "AND",
        "-rain",
        "rain:*",
        "weather & !rain | (",
        "'; DROP TABLE messages; --",
        "col:rain",
        "^rain",
        "{rain}",
        "\\",
        "\x00rain",
        "   ",
        "",
        "🌧️ rain",
        "a" * 5000,
    ],
)
def test_search_treats_operators_and_quotes_as_plain_text(shared_store: Store, query: str) -> None:
    """FTS syntax, quotes, NULs and SQL in a query never raise and never act as operators."""
    conv = shared_store.create_conversation()
    msg = shared_store.append_message(conv.id, "user", "rain and weather")
    hits = shared_store.search(query, match="any", conversation_id=conv.id)
    assert all(h.id == msg.id for h in hits)
    shared_store.search(query, match="all")  # across every conversation too
    assert shared_store.get_message(msg.id).content == "rain and weather"  # nothing dropped


def test_export_returns_the_whole_conversation(store: Store) -> None:
    """Export returns the conversation, its messages in order, summaries and traces."""
    conv = store.create_conversation(title="x", settings={"k": [1]})
    m1 = store.append_message(conv.id, "user", "q", metadata={"a": {"b": None}})
    s = store.add_summary(
        conv.id,
        content="s",
        covers_from_seq=1,
        covers_through_seq=1,
        parent_id=None,
        token_count=1,
        tokenizer_id="t",
        model="m",
        prompt_version="v",
    )
    reply, trace = store.add_reply(
        conv.id, "a", trace=NewTrace(model="m", budget=1, total_tokens=1)
    )
    export = store.export_conversation(conv.id)
    assert export.conversation == store.get_conversation(conv.id)
    assert export.messages == [m1, reply] and export.summaries == [s] and export.traces == [trace]


def test_unknown_ids_raise_not_found(store: Store) -> None:
    """Every method given an unknown id raises NotFoundError, not a database error."""
    missing = 987654
    calls = [
        lambda: store.get_conversation(missing),
        lambda: store.update_conversation(missing, title="x"),
        lambda: store.delete_conversation(missing),
        lambda: store.append_message(missing, "user", "hi"),
        lambda: store.append_messages(missing, [NewMessage("user", "hi")]),
        lambda: store.append_messages(missing, []),
        lambda: store.get_message(missing),
        lambda: store.update_message(missing, pinned=True),
        lambda: store.messages(missing),
        lambda: store.messages_by_ids([missing]),
        lambda: store.pinned_messages(missing),
        lambda: store.store_token_counts("t", {missing: 1}),
        lambda: store.window_token_total(missing, 0, "t"),
        lambda: store.latest_summary(missing),
        lambda: store.summary_chain(missing),
        lambda: store.get_summary(missing),
        lambda: store.add_summary(
            missing,
            content="s",
            covers_from_seq=1,
            covers_through_seq=1,
            parent_id=None,
            token_count=1,
            tokenizer_id=None,
            model=None,
            prompt_version=None,
        ),
        lambda: store.add_reply(missing, "x"),
        lambda: store.get_trace(missing),
        lambda: store.traces(missing),
        lambda: store.search("x", conversation_id=missing),
        lambda: store.export_conversation(missing),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            call()


def test_store_is_a_context_manager_and_reports_dialect(db_url: str) -> None:
    """Store.open works as a context manager and names its dialect."""
    with Store.open(db_url) as opened:
        assert opened.dialect in ("sqlite", "postgresql")
        assert opened.dialect == ("sqlite" if db_url.startswith("sqlite") else "postgresql")
        opened.create_conversation()


def test_one_store_shared_by_threads_appends_without_gaps(store: Store) -> None:
    """A Store shared by several threads (like a UI worker) numbers their appends 1..N."""
    from concurrent.futures import ThreadPoolExecutor

    conv = store.create_conversation()

    def write(worker: int) -> None:
        for i in range(25):
            store.append_message(conv.id, "user", f"w{worker} {i}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(4)))
    assert [m.seq for m in store.messages(conv.id)] == list(range(1, 101))


def test_messages_at_reads_the_given_seqs_in_one_call(store: Store) -> None:
    """messages_at returns the messages at those seqs, in seq order, skipping absent ones."""
    conv = store.create_conversation()
    for i in range(5):
        store.append_message(conv.id, "user" if i % 2 == 0 else "assistant", f"m{i}")
    found = store.messages_at(conv.id, [4, 2, 9, 2])
    assert [(m.seq, m.content) for m in found] == [(2, "m1"), (4, "m3")]
    assert store.messages_at(conv.id, []) == []
