"""Stored message vectors, on SQLite and PostgreSQL: keyed by embedder, idempotent, cascaded."""

from __future__ import annotations

import struct

import pytest
from recursa.memory import InvalidInputError, NotFoundError, Store
from recursa.memory.records import StoredEmbedding

EMBEDDER = "test:first"
OTHER = "test:second"


def vec(*values: float) -> bytes:
    """float32 little-endian bytes, as vectors are stored."""
    return struct.pack(f"<{len(values)}f", *values)


def conversation_with(store: Store, count: int) -> tuple[int, list[int]]:
    conv = store.create_conversation()
    ids = [store.append_message(conv.id, "user", f"message {i}").id for i in range(count)]
    return conv.id, ids


def test_vectors_are_read_back_exactly_in_seq_order(store: Store) -> None:
    """Stored bytes come back unchanged with their message id and seq, in seq order."""
    conv, ids = conversation_with(store, 3)
    vectors = {ids[2]: vec(0.5, -1.25), ids[0]: vec(1e-30, 3.0), ids[1]: vec(-0.0, 7.0)}
    store.add_embeddings(EMBEDDER, 2, vectors)
    assert store.embeddings(conv, EMBEDDER) == [
        StoredEmbedding(ids[0], 1, vectors[ids[0]]),
        StoredEmbedding(ids[1], 2, vectors[ids[1]]),
        StoredEmbedding(ids[2], 3, vectors[ids[2]]),
    ]
    assert store.count_embeddings(conv, EMBEDDER) == 3


def test_a_seq_range_reads_only_its_vectors(store: Store) -> None:
    """after_seq < seq <= through_seq selects the vectors of that stretch only."""
    conv, ids = conversation_with(store, 5)
    store.add_embeddings(EMBEDDER, 1, {mid: vec(float(i)) for i, mid in enumerate(ids)})
    assert [e.seq for e in store.embeddings(conv, EMBEDDER, after_seq=2)] == [3, 4, 5]
    assert [e.seq for e in store.embeddings(conv, EMBEDDER, after_seq=1, through_seq=3)] == [2, 3]
    assert store.embeddings(conv, EMBEDDER, after_seq=5) == []


def test_storing_again_keeps_the_first_vector(store: Store) -> None:
    """add_embeddings is idempotent: a message's stored vector is kept, never duplicated."""
    conv, ids = conversation_with(store, 2)
    store.add_embeddings(EMBEDDER, 2, {ids[0]: vec(1, 0)})
    store.add_embeddings(EMBEDDER, 2, {ids[0]: vec(0, 1), ids[1]: vec(1, 1)})
    assert store.embeddings(conv, EMBEDDER) == [
        StoredEmbedding(ids[0], 1, vec(1, 0)),
        StoredEmbedding(ids[1], 2, vec(1, 1)),
    ]


def test_two_embedders_never_mix(store: Store) -> None:
    """Vectors of a second embedder (another size too) are stored and read apart from the first."""
    conv, ids = conversation_with(store, 3)
    store.add_embeddings(EMBEDDER, 2, {ids[0]: vec(1, 2), ids[1]: vec(3, 4)})
    store.add_embeddings(OTHER, 3, {ids[1]: vec(5, 6, 7)})
    assert [e.message_id for e in store.embeddings(conv, EMBEDDER)] == ids[:2]
    assert store.embeddings(conv, OTHER) == [StoredEmbedding(ids[1], 2, vec(5, 6, 7))]
    assert store.embedded_ids(ids, EMBEDDER) == set(ids[:2])
    assert store.embedded_ids(ids, OTHER) == {ids[1]}
    missing_other = store.messages_without_embedding(conv, OTHER, limit=None)
    assert [m.id for m in missing_other] == [ids[0], ids[2]]
    assert store.count_embeddings(conv, OTHER) == 1


def test_vectors_of_one_conversation_stay_in_it(store: Store) -> None:
    """Another conversation's vectors never appear in this one's reads."""
    first, first_ids = conversation_with(store, 2)
    second, second_ids = conversation_with(store, 2)
    store.add_embeddings(EMBEDDER, 1, {mid: vec(1.0) for mid in first_ids + second_ids})
    assert [e.message_id for e in store.embeddings(second, EMBEDDER)] == second_ids
    assert store.count_embeddings(first, EMBEDDER) == 2


def test_deleting_a_conversation_deletes_its_vectors(store: Store) -> None:
    """Vectors go with their messages when a conversation is deleted."""
    conv, ids = conversation_with(store, 2)
    keep, keep_ids = conversation_with(store, 1)
    store.add_embeddings(EMBEDDER, 1, {mid: vec(1.0) for mid in ids + keep_ids})
    store.delete_conversation(conv)
    assert store.embedded_ids(ids + keep_ids, EMBEDDER) == set(keep_ids)
    with pytest.raises(NotFoundError):
        store.embeddings(conv, EMBEDDER)


def test_messages_without_embedding_are_the_usable_ones_in_seq_order(store: Store) -> None:
    """Failed replies and empty ones never need a vector; the rest are listed until stored."""
    conv = store.create_conversation().id
    question = store.append_message(conv, "user", "question")
    store.append_message(conv, "assistant", "boom", status="error")
    store.append_message(conv, "assistant", "", status="interrupted")
    answer = store.append_message(conv, "assistant", "answer", metadata={"superseded": True})
    later = store.append_message(conv, "user", "later")
    listed = store.messages_without_embedding(conv, EMBEDDER, limit=None)
    assert [m.id for m in listed] == [question.id, answer.id, later.id]
    assert store.count_messages_without_embedding(conv, EMBEDDER) == 3
    store.add_embeddings(EMBEDDER, 1, {answer.id: vec(1.0)})
    assert [m.id for m in store.messages_without_embedding(conv, EMBEDDER, limit=None)] == [
        question.id,
        later.id,
    ]
    assert store.count_messages_without_embedding(conv, EMBEDDER) == 2


def test_messages_without_embedding_page_by_seq(store: Store) -> None:
    """limit, after_seq and through_seq page through the messages still lacking a vector."""
    conv, ids = conversation_with(store, 6)
    store.add_embeddings(EMBEDDER, 1, {ids[1]: vec(1.0)})
    page = store.messages_without_embedding(conv, EMBEDDER, limit=2)
    assert [m.seq for m in page] == [1, 3]
    page = store.messages_without_embedding(conv, EMBEDDER, limit=2, after_seq=page[-1].seq)
    assert [m.seq for m in page] == [4, 5]
    assert [
        m.seq for m in store.messages_without_embedding(conv, EMBEDDER, limit=9, through_seq=4)
    ] == [1, 3, 4]


def test_a_vector_of_the_wrong_size_is_refused(store: Store) -> None:
    """Bytes that are not dim float32 values raise InvalidInputError before anything is stored."""
    conv, ids = conversation_with(store, 2)
    with pytest.raises(InvalidInputError, match="3 float32 values take 12"):
        store.add_embeddings(EMBEDDER, 3, {ids[0]: vec(1, 2, 3), ids[1]: vec(1, 2)})
    with pytest.raises(InvalidInputError, match="must be bytes"):
        store.add_embeddings(EMBEDDER, 1, {ids[0]: [1.0]})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="dim must be at least 1"):
        store.add_embeddings(EMBEDDER, 0, {ids[0]: b""})
    with pytest.raises(InvalidInputError, match="embedder_id is empty"):
        store.add_embeddings(" ", 1, {ids[0]: vec(1.0)})
    assert store.count_embeddings(conv, EMBEDDER) == 0


def test_an_unknown_message_stores_nothing(store: Store) -> None:
    """One unknown message id: NotFoundError naming it, and none of the batch is stored."""
    conv, ids = conversation_with(store, 1)
    with pytest.raises(NotFoundError, match="999999"):
        store.add_embeddings(EMBEDDER, 1, {ids[0]: vec(1.0), 999999: vec(2.0)})
    assert store.count_embeddings(conv, EMBEDDER) == 0


def test_reads_of_an_unknown_conversation_are_not_found(store: Store) -> None:
    """Every per-conversation read raises NotFoundError for an unknown conversation id."""
    for call in (
        lambda: store.embeddings(424242, EMBEDDER),
        lambda: store.count_embeddings(424242, EMBEDDER),
        lambda: store.messages_without_embedding(424242, EMBEDDER, limit=1),
        lambda: store.count_messages_without_embedding(424242, EMBEDDER),
    ):
        with pytest.raises(NotFoundError, match="424242"):
            call()


def test_storing_nothing_is_a_no_op(store: Store) -> None:
    """An empty mapping stores nothing and opens no transaction."""
    store.add_embeddings(EMBEDDER, 4, {})
    assert store.embedded_ids([], EMBEDDER) == set()


def test_editing_a_message_drops_its_stale_vector(store: Store) -> None:
    """A message whose text changes loses its vector (it described the old text)."""
    conv, ids = conversation_with(store, 2)
    store.add_embeddings(EMBEDDER, 2, {ids[0]: vec(1.0, 0.0), ids[1]: vec(0.0, 1.0)})
    store.update_message(ids[0], content="a new text")
    assert store.embedded_ids(ids, EMBEDDER) == {ids[1]}
    store.update_message(ids[1], pinned=True)  # no new text: the vector stays
    assert store.embedded_ids(ids, EMBEDDER) == {ids[1]}
