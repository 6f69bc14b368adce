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


# -- scores: a bfloat16 first pass, float32 results ---------------------------------------

PARAPHRASES = [
    "Ada is a marine biologist.",
    "My sister studies fish and coral for a living.",
    "Ada spends her days on a research boat off Lisbon.",
    "What is Ada's job again?",
    "The ocean institute hired my sister last spring.",
    "I bought a new pair of running shoes.",
]


class FixedEmbedder:
    """Test double: every text's vector is `query`; the stored vectors are written directly."""

    id = "test:fixed"

    def __init__(self, query: np.ndarray) -> None:
        self.query = query.astype(np.float32)

    @property
    def dim(self) -> int:
        return len(self.query)

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.tile(self.query, (len(texts), 1))

    def close(self) -> None:
        return None


class CountingEmbedder:
    """Test double: another embedder, with each call's texts recorded."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    @property
    def id(self) -> str:
        return self.inner.id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.embed(texts)

    def close(self) -> None:
        self.inner.close()


def float32_ranking(
    store: Store, conv: int, embedder_id: str, query: np.ndarray
) -> list[tuple[int, float]]:
    """Every stored vector's float32 cosine with `query`, best first (ties: older first)."""
    rows = store.embeddings(conv, embedder_id)
    scores = [float(np.dot(from_bytes(r.vector), query.astype(np.float32))) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: (-scores[i], rows[i].seq))
    return [(rows[i].message_id, scores[i]) for i in order]


@pytest.mark.parametrize("bfloat16", [True, False], ids=["bfloat16-first-pass", "float32"])
def test_scores_are_float32_cosines(store: Store, minilm: LocalEmbedder, bfloat16: bool) -> None:
    """With or without the bfloat16 first pass, hits and scores are float32's, in its order."""
    texts = [f"{t} ({i})" for i in range(4) for t in [*CHATTER, *PARAPHRASES, FACT]]
    conv, ids = fill(store, texts)
    index = VectorIndex(store, minilm, bfloat16=bfloat16)
    index.backfill(conv)
    hits = index.search(conv, QUESTION, before_seq=len(ids) + 1, limit=len(ids))
    assert index._matrices[conv].split is bfloat16  # each layout is the one under test
    expected = float32_ranking(store, conv, minilm.id, minilm.embed([QUESTION])[0])
    assert len(expected) == len(ids)
    assert [mid for mid, _ in hits] == [mid for mid, _ in expected]
    assert np.allclose([s for _, s in hits], [s for _, s in expected], rtol=0, atol=1e-6)
    top = index.search(conv, QUESTION, before_seq=len(ids) + 1, limit=5)
    assert [mid for mid, _ in top] == [mid for mid, _ in expected[:5]]


def test_rows_that_tie_in_bfloat16_are_ranked_by_float32(store: Store) -> None:
    """Cosines 1e-5 apart, which bfloat16 cannot tell apart, still come back in float32 order."""
    pytest.importorskip("torch")  # the bfloat16 first pass needs it
    rng = np.random.default_rng(3)
    query = rng.standard_normal(64)
    query /= np.linalg.norm(query)
    side = rng.standard_normal(64)
    side -= side.dot(query) * query
    side /= np.linalg.norm(side)
    cosines = 0.8 + 1e-5 * rng.permutation(300)
    far = rng.standard_normal((300, 64))
    vectors = [c * query + np.sqrt(1 - c * c) * side for c in cosines]
    vectors += list(far / np.linalg.norm(far, axis=1, keepdims=True))
    order = rng.permutation(len(vectors))
    embedder = FixedEmbedder(query)
    conv, ids = fill(store, [f"message {i}" for i in range(len(vectors))])
    store.add_embeddings(
        embedder.id,
        embedder.dim,
        {mid: to_bytes(vectors[j].astype(np.float32)) for mid, j in zip(ids, order, strict=True)},
    )
    index = VectorIndex(store, embedder)
    hits = index.search(conv, "anything", before_seq=len(ids) + 1, limit=10)
    expected = float32_ranking(store, conv, embedder.id, query)[:10]
    assert [mid for mid, _ in hits] == [mid for mid, _ in expected]
    assert [s for _, s in hits] == pytest.approx([s for _, s in expected], abs=1e-6)
    assert hits[0][1] > hits[1][1] > hits[9][1] > 0.8


def test_rescoring_finds_the_exact_top_whatever_the_first_pass_error() -> None:
    """First-pass scores off by up to their error bound, the worst way, still give float32's top."""
    from recursa.agent.recall.vectors import _Matrix, _Ranking

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((500, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[0] + vectors[1]
    query = (query / np.linalg.norm(query)).astype(np.float32)
    matrix = _Matrix(32, split=True)
    matrix.append([StoredEmbedding(i + 1, i + 1, to_bytes(v)) for i, v in enumerate(vectors)])
    exact = np.einsum("ij,j->i", vectors, query)
    best = sorted(range(len(exact)), key=lambda i: (-exact[i], i))
    error = 0.05
    # The true best rows pushed down by almost the error, every other row pushed up.
    first = exact + np.float32(0.99 * error)
    first[best[:40]] = exact[best[:40]] - np.float32(0.99 * error)
    ranking = _Ranking(matrix.reader(500), query, first, error)
    for count in (1, 5, 10, 40):
        top = ranking.top(count)
        assert [row for row, _ in top] == best[:count]
        assert [score for _, score in top] == [float(exact[i]) for i in best[:count]]


def test_the_first_pass_error_stays_within_its_bound(minilm: LocalEmbedder) -> None:
    """bfloat16 first-pass scores differ from float32 scores by less than the bound used."""
    torch = pytest.importorskip("torch")
    from recursa.agent.recall.vectors import _bfloat16_scores, _first_pass_error, _Matrix

    rng = np.random.default_rng(5)
    texts = [*CHATTER, *PARAPHRASES, FACT, QUESTION]
    sentences = minilm.embed(texts)
    mixed = sentences[rng.integers(0, len(texts), (2000, 3))].sum(axis=1)
    unnormalised = rng.standard_normal((500, 384)) * rng.uniform(0.1, 3.0, (500, 1))
    vectors = np.concatenate([sentences, mixed, unnormalised]).astype(np.float32)
    matrix = _Matrix(384, split=True)
    matrix.append([StoredEmbedding(i + 1, i + 1, to_bytes(v)) for i, v in enumerate(vectors)])
    # The two planes hold the float32 values exactly.
    assert np.array_equal(matrix.reader(matrix.size)(np.arange(matrix.size)), vectors)
    for query in [*minilm.embed([QUESTION, FACT]), rng.standard_normal(384).astype(np.float32)]:
        first = _bfloat16_scores(torch, matrix.high[: matrix.size], query)
        exact = np.einsum("ij,j->i", vectors, query)
        bound = _first_pass_error(matrix.norm, query)
        assert np.abs(first - exact).max() < bound


def test_a_question_searched_again_is_embedded_once(
    store: Store, keyword_embedder: Embedder
) -> None:
    """The second search with the same question (a plan made again) reuses its vector and scores."""
    embedder = CountingEmbedder(keyword_embedder)
    conv, ids = fill(store, [FACT, *CHATTER])
    index = VectorIndex(store, embedder)
    index.backfill(conv)
    embedder.calls.clear()
    question = "marine biologist in Lisbon"
    first = index.search(conv, question, before_seq=len(ids), limit=3)
    assert first[0][0] == ids[0]
    # The second plan searches a little further: the kept scores are extended by one row.
    again = index.search(conv, question, before_seq=len(ids) + 1, limit=3)
    assert again == VectorIndex(store, keyword_embedder).search(
        conv, question, before_seq=len(ids) + 1, limit=3
    )
    assert embedder.calls == [[question]]
    # A message added since is scored too: kept scores are never served stale.
    (new,) = store.append_messages(conv, [NewMessage("user", "Marine biologist in Lisbon!")])
    index.embed_messages([new])
    assert index.search(conv, question, before_seq=100, limit=1)[0][0] == new.id
    assert embedder.calls == [[question], [new.content]]
