"""VectorIndex over a real store (SQLite and PostgreSQL) with the real all-MiniLM-L6-v2."""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from recursa.agent.recall.embedders import Embedder, LocalEmbedder
from recursa.agent.recall.vectors import VectorIndex, from_bytes, to_bytes
from recursa.memory import NewMessage, NotFoundError, Store
from recursa.memory.records import StoredEmbedding

pytestmark = pytest.mark.embedder

FACT = "Ada works as a marine biologist in Lisbon."
QUESTION = "What does my sister do for a living?"
CHATTER = [
    "Can you recommend a good pasta recipe?",
    "Try carbonara with guanciale and pecorino.",
    "The train to the airport was late again today.",
    "I am thinking of repainting the kitchen blue.",
    "Did you watch the football match last night?",
    "My laptop battery drains far too quickly.",
]


def fill(store: Store, texts: list[str]) -> tuple[int, list[int]]:
    """A conversation holding `texts`, alternating user and assistant."""
    conv = store.create_conversation().id
    items = [NewMessage("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]
    return conv, [m.id for m in store.append_messages(conv, items)]


def spy_on_reads(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[dict[str, Any], list[StoredEmbedding]]]:
    """Record each `store.embeddings` call (its arguments) and the rows it returned."""
    calls: list[tuple[dict[str, Any], list[StoredEmbedding]]] = []
    real: Callable[..., list[StoredEmbedding]] = store.embeddings

    def recording(conversation_id: int, embedder_id: str, **kw: Any) -> list[StoredEmbedding]:
        rows = real(conversation_id, embedder_id, **kw)
        calls.append((kw, rows))
        return rows

    monkeypatch.setattr(store, "embeddings", recording)
    return calls


def test_vectors_round_trip_through_bytes() -> None:
    """to_bytes / from_bytes keep float32 values exactly (little-endian)."""
    vector = np.array([0.1, -2.5, 3e-8], dtype=np.float32)
    assert to_bytes(vector) == struct.pack("<3f", *vector.tolist())
    assert np.array_equal(from_bytes(to_bytes(vector)), vector)


def test_a_paraphrase_finds_the_fact(store: Store, minilm: LocalEmbedder) -> None:
    """'What does my sister do for a living?' ranks the marine-biologist turn first."""
    conv, ids = fill(store, [*CHATTER[:3], FACT, *CHATTER[3:]])
    index = VectorIndex(store, minilm)
    hits = index.search(conv, QUESTION, before_seq=len(ids) + 1, limit=3)
    assert hits[0][0] == ids[3]
    assert len(hits) == 3 and hits[0][1] > hits[1][1] >= hits[2][1]
    assert all(-1.0 <= score <= 1.0 for _, score in hits)


def test_a_missing_vector_is_computed_on_use(store: Store, minilm: LocalEmbedder) -> None:
    """Messages stored without vectors get them during the search that needs them."""
    conv, ids = fill(store, [FACT, *CHATTER])
    assert store.count_embeddings(conv, minilm.id) == 0
    index = VectorIndex(store, minilm)
    assert index.search(conv, QUESTION, before_seq=100, limit=1)[0][0] == ids[0]
    assert store.count_embeddings(conv, minilm.id) == len(ids)
    assert index.loaded(conv) == len(ids)


def test_only_messages_before_before_seq_are_searched(store: Store, minilm: LocalEmbedder) -> None:
    """before_seq bounds the search, and only vectors up to it are computed."""
    conv, ids = fill(store, [*CHATTER[:2], FACT, *CHATTER[2:]])
    index = VectorIndex(store, minilm)
    hits = index.search(conv, QUESTION, before_seq=3, limit=5)
    assert {mid for mid, _ in hits} == set(ids[:2])
    assert store.count_embeddings(conv, minilm.id) == 2
    assert index.search(conv, QUESTION, before_seq=4, limit=1)[0][0] == ids[2]
    # An earlier point of the same conversation is served from memory.
    assert {mid for mid, _ in index.search(conv, QUESTION, before_seq=2, limit=5)} == {ids[0]}


def test_later_searches_read_only_the_new_vectors(
    store: Store, minilm: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first load, a search reads from SQL only the vectors stored since."""
    conv, ids = fill(store, CHATTER)
    index = VectorIndex(store, minilm)
    index.backfill(conv)
    reads = spy_on_reads(store, monkeypatch)
    index.search(conv, QUESTION, before_seq=100, limit=2)
    assert [len(rows) for _, rows in reads] == [len(ids)]
    new = store.append_messages(conv, [NewMessage("user", FACT), NewMessage("assistant", "Ok.")])
    assert index.embed_messages(new) == 2
    hits = index.search(conv, QUESTION, before_seq=100, limit=1)
    assert hits[0][0] == new[0].id
    assert [[row.message_id for row in rows] for _, rows in reads[1:]] == [[m.id for m in new]]
    assert reads[1][0]["after_seq"] == len(ids)
    assert index.search(conv, QUESTION, before_seq=100, limit=1) == hits
    assert len(reads) == 2  # nothing new: nothing read
    assert index.loaded(conv) == len(ids) + 2


def test_vectors_stored_by_another_writer_are_picked_up(
    store: Store, minilm: LocalEmbedder
) -> None:
    """A second index (another process, say) storing vectors is seen by the first's next search."""
    conv, ids = fill(store, CHATTER)
    first = VectorIndex(store, minilm)
    first.search(conv, QUESTION, before_seq=100, limit=1)
    (fact,) = store.append_messages(conv, [NewMessage("user", FACT)])
    VectorIndex(store, minilm).embed_messages([fact])
    assert first.search(conv, QUESTION, before_seq=100, limit=1)[0][0] == fact.id
    assert first.loaded(conv) == len(ids) + 1


def test_lazy_work_per_search_is_bounded_and_backfill_does_the_rest(
    store: Store, minilm: LocalEmbedder
) -> None:
    """With lazy_limit=2, a search computes two missing vectors; backfill computes the others."""
    conv, ids = fill(store, [*CHATTER, FACT])
    index = VectorIndex(store, minilm, lazy_limit=2)
    index.search(conv, QUESTION, before_seq=100, limit=3)
    assert store.count_embeddings(conv, minilm.id) == 2
    assert index.loaded(conv) == 2
    progress: list[tuple[int, int]] = []
    left = len(ids) - 2
    assert index.backfill(conv, lambda done, total: progress.append((done, total))) == left
    assert progress[0] == (0, left) and progress[-1] == (left, left)
    assert index.search(conv, QUESTION, before_seq=100, limit=1)[0][0] == ids[-1]
    assert index.loaded(conv) == len(ids)


def test_backfill_embeds_every_usable_message_in_batches(
    store: Store, minilm: LocalEmbedder
) -> None:
    """backfill stores a vector for each usable message, batch by batch, reporting progress."""
    texts = [f"{CHATTER[i % len(CHATTER)]} (note {i})" for i in range(11)]
    conv, ids = fill(store, texts)
    store.append_message(conv, "assistant", "failed", status="error")
    index = VectorIndex(store, minilm, batch_size=4)
    assert index.missing(conv) == 11
    progress: list[tuple[int, int]] = []
    assert index.backfill(conv, lambda done, total: progress.append((done, total))) == 11
    assert progress == [(0, 11), (4, 11), (8, 11), (11, 11)]
    assert index.missing(conv) == 0 and index.backfill(conv) == 0
    assert store.embedded_ids(ids, minilm.id) == set(ids)


def test_embed_messages_skips_stored_failed_and_empty_messages(
    store: Store, minilm: LocalEmbedder
) -> None:
    """embed_messages computes only what is missing; failed and empty replies get no vector."""
    conv, _ = fill(store, [QUESTION])
    answer = store.append_message(conv, "assistant", FACT)
    failed = store.append_message(conv, "assistant", "boom", status="error")
    empty = store.append_message(conv, "assistant", "", status="interrupted")
    index = VectorIndex(store, minilm)
    assert index.embed_messages([answer, failed, empty, answer]) == 1
    assert index.embed_messages([answer]) == 0
    assert store.embedded_ids([answer.id, failed.id, empty.id], minilm.id) == {answer.id}
    (stored,) = store.embeddings(conv, minilm.id)
    assert np.allclose(from_bytes(stored.vector), minilm.embed([FACT])[0], atol=1e-5)


def test_excluded_and_superseded_messages_are_never_returned(
    store: Store, minilm: LocalEmbedder
) -> None:
    """exclude ids and replies marked superseded after they were embedded are left out."""
    conv, ids = fill(store, [FACT, "Ada is a marine biologist.", *CHATTER])
    index = VectorIndex(store, minilm)
    top = [mid for mid, _ in index.search(conv, QUESTION, before_seq=100, limit=2)]
    assert set(top) == set(ids[:2])
    hits = index.search(conv, QUESTION, before_seq=100, limit=2, exclude={ids[0]})
    assert ids[0] not in {mid for mid, _ in hits} and hits[0][0] == ids[1]
    store.update_message(ids[1], metadata={"superseded": True})
    hits = index.search(conv, QUESTION, before_seq=100, limit=len(ids))
    assert ids[1] not in {mid for mid, _ in hits}
    assert len(hits) == len(ids) - 1


def test_two_embedders_keep_separate_vectors(
    store: Store, minilm: LocalEmbedder, keyword_embedder: Embedder
) -> None:
    """Indexes over two embedders each compute, store and read only their own vectors."""
    conv, ids = fill(store, [FACT, *CHATTER])
    semantic = VectorIndex(store, minilm)
    semantic.backfill(conv)
    keywords = VectorIndex(store, keyword_embedder)
    assert keywords.missing(conv) == len(ids)
    hits = keywords.search(conv, "marine biologist Lisbon", before_seq=100, limit=1)
    assert hits[0][0] == ids[0]
    assert store.count_embeddings(conv, keyword_embedder.id) == len(ids)
    assert {len(e.vector) for e in store.embeddings(conv, keyword_embedder.id)} == {4 * 32}
    assert {len(e.vector) for e in store.embeddings(conv, minilm.id)} == {4 * 384}
    assert semantic.search(conv, QUESTION, before_seq=100, limit=1)[0][0] == ids[0]


def test_warm_loads_the_matrix_before_the_first_search(
    store: Store, minilm: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """warm() loads every stored vector up front; the search after it reads nothing from SQL."""
    conv, ids = fill(store, [FACT, *CHATTER])
    index = VectorIndex(store, minilm)
    index.backfill(conv)
    assert index.warm(conv) == len(ids)
    reads = spy_on_reads(store, monkeypatch)
    assert index.search(conv, QUESTION, before_seq=len(ids) + 1, limit=1)[0][0] == ids[0]
    assert reads == []


def test_forget_reloads_from_the_store(store: Store, minilm: LocalEmbedder) -> None:
    """After forget, the next search reads the conversation's vectors again."""
    conv, ids = fill(store, CHATTER)
    index = VectorIndex(store, minilm)
    first = index.search(conv, QUESTION, before_seq=100, limit=3)
    index.forget(conv)
    assert index.loaded(conv) == 0
    assert index.search(conv, QUESTION, before_seq=100, limit=3) == first
    assert index.loaded(conv) == len(ids)


def test_only_recent_conversations_are_kept_in_memory(store: Store, minilm: LocalEmbedder) -> None:
    """Beyond max_conversations, the least recently searched conversation's matrix is dropped."""
    index = VectorIndex(store, minilm, max_conversations=2)
    convs = [fill(store, CHATTER[:2])[0] for _ in range(3)]
    for conv in convs:
        index.search(conv, QUESTION, before_seq=100, limit=1)
    assert [index.loaded(c) for c in convs] == [0, 2, 2]


def test_nothing_to_search_returns_no_hits(store: Store, minilm: LocalEmbedder) -> None:
    """An empty query, a zero limit, or nothing before before_seq: no hits, no work."""
    conv, _ = fill(store, CHATTER[:2])
    index = VectorIndex(store, minilm)
    assert index.search(conv, "   ", before_seq=100, limit=3) == []
    assert index.search(conv, QUESTION, before_seq=100, limit=0) == []
    assert index.search(conv, QUESTION, before_seq=1, limit=3) == []
    assert store.count_embeddings(conv, minilm.id) == 0
    empty = store.create_conversation().id
    assert index.search(empty, QUESTION, before_seq=100, limit=3) == []


def test_an_unknown_conversation_is_not_found(store: Store, minilm: LocalEmbedder) -> None:
    """Searching or backfilling a conversation that does not exist (or no longer) is NotFound."""
    index = VectorIndex(store, minilm)
    with pytest.raises(NotFoundError):
        index.search(424242, QUESTION, before_seq=10, limit=1)
    with pytest.raises(NotFoundError):
        index.backfill(424242)
    assert index.loaded(424242) == 0
    conv, _ = fill(store, CHATTER[:2])
    index.search(conv, QUESTION, before_seq=10, limit=1)
    store.delete_conversation(conv)
    with pytest.raises(NotFoundError):
        index.search(conv, QUESTION, before_seq=10, limit=1)


def test_concurrent_searches_agree(store: Store, minilm: LocalEmbedder) -> None:
    """Searches from several threads at once (as the TUI's workers do) all get the same hits."""
    conv, _ = fill(store, [FACT, *CHATTER])
    index = VectorIndex(store, minilm)
    results: list[list[tuple[int, float]]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(index.search(conv, QUESTION, before_seq=100, limit=3))
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 4 and all(r == results[0] for r in results)
    assert index.loaded(conv) == len(CHATTER) + 1
    assert store.count_embeddings(conv, minilm.id) == len(CHATTER) + 1
