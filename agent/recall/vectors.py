"""VectorIndex: semantic search over a conversation's stored message vectors, held in memory.

Vectors are computed by an `Embedder`, stored per message and embedder
(`Store.add_embeddings`), and searched by cosine similarity. Reading every
vector of a long conversation from SQL on each turn would cost as much as the
conversation is long, so each conversation's vectors are kept in memory, loaded
once and then only appended to.

How the matrix stays complete: the index remembers, per conversation, a seq up
to which it holds the vector of every message that should have one (status not
"error", content not empty). A search up to `before_seq` first moves that mark:
it asks the store for the messages in the new stretch that have no vector yet
and computes those (at most `lazy_limit` per search: a missing vector is
computed on use), then reads that stretch's stored vectors, in seq order. So a
turn reads from SQL only what was added since the last one, the vectors that
other processes or a backfill stored included. Memory: 4 × dim bytes a message
(1.5 KiB with all-MiniLM-L6-v2; 150 MiB for 100,000 messages), and 4 bytes a
message for each of the last `RECENT_QUERIES` questions' scores, for the
`max_conversations` most recently searched conversations.

How a search stays cheap as the conversation grows: scoring is bound by reading
the matrix from memory, and a 150 MiB float32 matrix read on every turn also
evicts the embedding model's weights from the CPU cache (measured: embedding the
query went from about 9 to 22 ms). So each float32 vector is held as two planes
of 16-bit halves: the high halves, which are the vector cut to bfloat16, and the
low halves, and when torch is installed a first pass scores every row from the
high plane alone, in bfloat16, reading half the bytes. Its error is bounded
(see `_first_pass_error`), so every row that can still reach the top is then
scored exactly from both planes, and the hits and their scores are float32's:
the same as scoring every row in float32. Without torch (or with `bfloat16`
off) the vectors are held as float32 rows, every one scored in float32 with
numpy. The question's vector and its first-pass scores are kept for the
last few questions, so the second search a plan makes with the same question
(and a turn sent right after its preview) reuses them.

Messages marked superseded or failed are never returned (the mark can come
after the vector, so it is checked when a hit is returned). Thread-safe: the TUI
searches and backfills from worker threads.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray
from recursa.agent.recall.embedders import Embedder
from recursa.agent.recall.search import usable
from recursa.memory.records import MessageRecord, StoredEmbedding

if TYPE_CHECKING:
    from recursa.memory.store import Store

__all__ = ["BATCH_SIZE", "LAZY_LIMIT", "VectorIndex", "from_bytes", "to_bytes"]

# Messages embedded and stored per transaction by `embed_messages` and `backfill`.
BATCH_SIZE: Final = 64
# At most this many missing vectors are computed during one search (about 0.5-1 s
# with all-MiniLM-L6-v2 on two CPU threads); a longer gap is `backfill`'s job.
LAZY_LIMIT: Final = 32
# Conversations whose matrices are kept; the least recently searched is dropped.
MAX_CONVERSATIONS: Final = 8
# Hits read per wanted hit, so usable ones remain after superseded ones are dropped.
OVERFETCH: Final = 2
# Questions whose vectors (and first-pass scores, per conversation) are kept: a plan
# searches twice with the same question when its window does not fit whole.
RECENT_QUERIES: Final = 2

ProgressCallback = Callable[[int, int], None]


def to_bytes(vector: NDArray[np.float32]) -> bytes:
    """A vector as stored: float32 values, little-endian."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> NDArray[np.float32]:
    """A stored vector read back (its length is len(data) / 4)."""
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def embeddable(record: MessageRecord) -> bool:
    """Whether a message gets a vector: the store's rule (status not "error", content not empty)."""
    return record.status != "error" and record.content != ""


class _Matrix:
    """One conversation's vectors in seq order, with their message ids and seqs.

    `covered` is the seq up to which every message that should have a vector has
    its row here. With `split`, each float32 vector is held as its 16-bit halves
    in two planes, `high` (the upper halves, i.e. the vector cut to bfloat16) and
    `low`, so a first pass can read `high` alone (see the module docstring);
    otherwise as float32 rows in `vectors`. `norm` is the largest row length,
    which bounds the first pass's error. Rows never change once appended. They
    live in buffers kept an eighth larger than needed, so the few rows a turn
    appends copy the whole matrix only once in thousands of turns.
    """

    def __init__(self, dim: int, *, split: bool) -> None:
        self.dim = dim
        self.split = split
        self.size = 0
        self.covered = 0
        # The planes in use are grown with the ids; the others stay empty.
        self.high: NDArray[np.uint16] = np.empty((0, dim), dtype=np.uint16)
        self.low: NDArray[np.uint16] = np.empty((0, dim), dtype=np.uint16)
        self.vectors: NDArray[np.float32] = np.empty((0, dim), dtype=np.float32)
        self.ids: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.seqs: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.norm = 0.0
        # First-pass scores of recent questions over the rows before `size` at the time.
        self.first_passes: OrderedDict[str, NDArray[np.float32]] = OrderedDict()

    def append(self, rows: Sequence[StoredEmbedding]) -> None:
        rows = [row for row in rows if len(row.vector) == 4 * self.dim]
        if not rows:
            return
        needed = self.size + len(rows)
        if needed > len(self.ids):
            # Not doubled: a large first load would reserve as much again, unused.
            capacity = needed + max(needed // 8, 64)
            if self.split:
                self.high = _grown(self.high, capacity)
                self.low = _grown(self.low, capacity)
            else:
                self.vectors = _grown(self.vectors, capacity)
            self.ids = _grown(self.ids, capacity)
            self.seqs = _grown(self.seqs, capacity)
        end = self.size + len(rows)
        block = np.frombuffer(b"".join(row.vector for row in rows), dtype="<f4")
        block = block.reshape(len(rows), self.dim)
        if self.split:
            bits = block.view("<u4")
            self.high[self.size : end] = bits >> 16
            self.low[self.size : end] = bits & 0xFFFF
        else:
            self.vectors[self.size : end] = block
        self.ids[self.size : end] = [row.message_id for row in rows]
        self.seqs[self.size : end] = [row.seq for row in rows]
        norms = np.linalg.norm(block, axis=1)
        norms = norms[np.isfinite(norms)]
        if len(norms):
            self.norm = max(self.norm, float(norms.max()))
        self.size = end

    def reader(self, count: int) -> Callable[[NDArray[np.intp]], NDArray[np.float32]]:
        """A function giving the float32 values of some of the first `count` rows.

        It holds the buffers of now, so it may be called without the index's lock:
        rows before `count` never change, and a grown buffer is a new array.
        """
        if self.split:
            high, low = self.high[:count], self.low[:count]
            return lambda rows: _float32(high[rows], low[rows])
        vectors = self.vectors[:count]
        return lambda rows: vectors[rows]


def _grown(array: NDArray[Any], rows: int) -> NDArray[Any]:
    # Rows past `size` are never read, so they need no zeroing.
    grown = np.empty((rows, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


def _float32(high: NDArray[np.uint16], low: NDArray[np.uint16]) -> NDArray[np.float32]:
    """The float32 rows whose halves these are (exactly the stored values)."""
    bits = np.left_shift(high, 16, dtype=np.uint32)
    np.bitwise_or(bits, low, out=bits)
    return bits.view(np.float32)


def _dot(rows: NDArray[np.float32], query: NDArray[np.float32]) -> NDArray[np.float32]:
    # einsum, not `@`: BLAS hands mid-sized products to its threads, which on busy
    # cores took 8 ms for 2,000 rows against 0.1 ms on the calling thread (and 16
    # against 11 ms for 100,000 rows).
    return np.einsum("ij,j->i", rows, query)


def _bfloat16_scores(torch: Any, high: NDArray[np.uint16], query: NDArray[np.float32]) -> Any:
    """Every row's first-pass score: the high plane read as bfloat16, times the query's bfloat16."""
    matrix = torch.from_numpy(high.view(np.int16)).view(torch.bfloat16)
    vector = torch.from_numpy(query).to(torch.bfloat16)
    # One thread, as the embedder runs: the pass is bound by memory reads, and waking
    # a second thread on busy cores cost more than it saved (measured: 3.2 against
    # 0.2 ms at 1,000 rows, 15.8 against 8.3 ms at 100,000).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.mv(matrix, vector).float().numpy()
    finally:
        torch.set_num_threads(previous)


def _first_pass_error(norm: float, query: NDArray[np.float32]) -> float:
    """A bound on |bfloat16 first-pass score - float32 score| for rows no longer than `norm`.

    bfloat16 keeps 8 significant bits. Per term m_i q_i: cutting m_i to bfloat16
    errs by less than 2^-7 of it, rounding q_i by at most 2^-8 of it (their
    product, 16 bits, is exact in float32). The float32 sum of n terms errs by
    less than n x 2^-24 of the sum of |terms|, and rounding it to bfloat16 by 2^-8
    of it. The sum of |m_i q_i| is at most |m| |q|; 2^-12 covers the products of
    these small errors.
    """
    relative = 2.0**-7 + 2.0**-8 + 2.0**-8 + 2.0**-12 + len(query) * 2.0**-23
    return relative * norm * float(np.linalg.norm(query.astype(np.float64)))


class _Ranking:
    """One search's scores: a first pass for every row, float32 for any row that can reach the top.

    `first` differs from a row's float32 score by at most `error` (-inf marks a
    row left out); `read` gives rows' float32 values. A row among the `count`
    best by float32 score is then within 2 x error of the count-th best
    first-pass score, so scoring those rows again exactly gives the exact top.
    """

    def __init__(
        self,
        read: Callable[[NDArray[np.intp]], NDArray[np.float32]],
        query: NDArray[np.float32],
        first: NDArray[np.float32],
        error: float,
    ) -> None:
        self.read = read
        self.query = query
        self.first = first
        self.error = error

    def candidates(self) -> int:
        return int(np.isfinite(self.first).sum())

    def top(self, count: int) -> list[tuple[int, float]]:
        """The `count` best rows by float32 score, (row, score), best first; ties: older first."""
        if count <= 0:
            return []
        first = self.first
        chosen = np.isfinite(first)
        if count < len(first):
            kth = float(-np.partition(-first, count - 1)[count - 1])
            if np.isfinite(kth):
                chosen &= first >= kth - 2 * self.error
        rows = np.flatnonzero(chosen)
        scores = _dot(self.read(rows), self.query)
        keep = np.isfinite(scores)
        rows, scores = rows[keep], scores[keep]
        order = np.lexsort((rows, -scores))[:count]
        return [(int(rows[i]), float(scores[i])) for i in order]


class VectorIndex:
    """Embeds, stores and searches one embedder's message vectors, conversation by conversation.

    `store` is where vectors persist (keyed by the embedder's id, so two
    embedders never mix); `embedder` computes them. `bfloat16=False` keeps the
    float32 layout and scoring even when torch is installed (the results are the
    same; only the cost differs). Errors of the embedder
    (ModelError, ModelServerError) propagate: a caller that can do without
    semantic recall catches them and falls back to full-text search.
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        batch_size: int = BATCH_SIZE,
        lazy_limit: int = LAZY_LIMIT,
        max_conversations: int = MAX_CONVERSATIONS,
        bfloat16: bool = True,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.batch_size = max(1, batch_size)
        # At least one, or the covered mark could pass a message that has no vector.
        self.lazy_limit = max(1, lazy_limit)
        self.max_conversations = max(1, max_conversations)
        # A bfloat16 first pass when torch is installed (float32 scores either way).
        self.bfloat16 = bfloat16
        self._torch: Any = None
        self._torch_checked = False
        self._matrices: OrderedDict[int, _Matrix] = OrderedDict()
        self._queries: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def embedder_id(self) -> str:
        return self.embedder.id

    # -- writing vectors -----------------------------------------------------------

    def embed_messages(self, records: Sequence[MessageRecord]) -> int:
        """Compute and store the vectors these messages lack (in batches); returns how many.

        Messages that already have one under this embedder, failed ones and empty
        ones are skipped. Call it after a turn is committed, with the turn's messages.
        """
        wanted = [r for r in {r.id: r for r in records}.values() if embeddable(r)]
        if not wanted:
            return 0
        stored = self.store.embedded_ids([r.id for r in wanted], self.embedder_id)
        todo = [r for r in wanted if r.id not in stored]
        for start in range(0, len(todo), self.batch_size):
            self._embed_and_store(todo[start : start + self.batch_size])
        return len(todo)

    def backfill(self, conversation_id: int, progress: ProgressCallback | None = None) -> int:
        """Compute and store every missing vector of a conversation; returns how many.

        Runs in batches of `batch_size`, each stored in its own transaction (an
        interrupted backfill keeps what it did), calling `progress(done, total)`
        after each, and once with (0, total) before the first.
        """
        total = self.store.count_messages_without_embedding(conversation_id, self.embedder_id)
        if progress is not None:
            progress(0, total)
        done = 0
        after_seq = 0
        while True:
            batch = self.store.messages_without_embedding(
                conversation_id, self.embedder_id, limit=self.batch_size, after_seq=after_seq
            )
            if not batch:
                if progress is not None and done < total:
                    # Another writer (a search, another process) embedded the rest meanwhile.
                    progress(total, total)
                return done
            self._embed_and_store(batch)
            done += len(batch)
            after_seq = batch[-1].seq
            if progress is not None:
                progress(done, max(total, done))

    def missing(self, conversation_id: int) -> int:
        """How many of the conversation's messages still lack a vector (what backfill would do)."""
        return self.store.count_messages_without_embedding(conversation_id, self.embedder_id)

    def _embed_and_store(self, records: Sequence[MessageRecord]) -> None:
        vectors = self.embedder.embed([r.content for r in records])
        self.store.add_embeddings(
            self.embedder_id,
            int(vectors.shape[1]),
            {r.id: to_bytes(vector) for r, vector in zip(records, vectors, strict=True)},
        )

    # -- searching -----------------------------------------------------------------

    def search(
        self,
        conversation_id: int,
        query: str,
        *,
        before_seq: int,
        limit: int,
        exclude: Collection[int] = (),
    ) -> list[tuple[int, float]]:
        """The messages with seq < before_seq most similar to `query`: (message id, cosine).

        Best first; at most `limit`; ids in `exclude` and superseded or failed
        messages are left out. Vectors missing in that range are computed first
        (up to `lazy_limit` of them per call; `backfill` does the rest).
        """
        if limit <= 0 or before_seq <= 1 or not query.strip():
            return []
        with self._lock:
            matrix = self._synced(conversation_id, before_seq - 1)
            count = int(np.searchsorted(matrix.seqs[: matrix.size], before_seq, side="left"))
            if count == 0:
                return []
            query_vector = self._query_vector(query)
            first, error = self._first_pass(matrix, count, query, query_vector)
            ranking = _Ranking(matrix.reader(count), query_vector, first, error)
            ids = matrix.ids[:count].copy()
        if exclude:
            first[np.isin(ids, np.fromiter(exclude, dtype=np.int64))] = -np.inf
        return self._best_usable(ids, ranking, limit)

    def similarities(
        self, conversation_id: int, query: str, ids: Collection[int], *, before_seq: int
    ) -> dict[int, float]:
        """Cosine of `query` with each of `ids` (those with a vector, seq < before_seq).

        Recall's relevance gate weighs full-text hits with it: one the semantic
        ranking did not place near its top may still be close enough to keep.
        """
        if not ids or before_seq <= 1 or not query.strip():
            return {}
        with self._lock:
            matrix = self._synced(conversation_id, before_seq - 1)
            count = int(np.searchsorted(matrix.seqs[: matrix.size], before_seq, side="left"))
            wanted = np.fromiter(ids, dtype=np.int64)
            rows = np.flatnonzero(np.isin(matrix.ids[:count], wanted))
            if len(rows) == 0:
                return {}
            scores = _dot(matrix.reader(count)(rows), self._query_vector(query))
            found = matrix.ids[rows].copy()
        return {int(i): float(c) for i, c in zip(found, scores, strict=True) if np.isfinite(c)}

    def _query_vector(self, query: str) -> NDArray[np.float32]:
        """The question's vector, computed once for the last few questions."""
        vector = self._queries.get(query)
        if vector is None:
            vector = np.ascontiguousarray(self.embedder.embed([query])[0], dtype=np.float32)
            self._queries[query] = vector
            while len(self._queries) > RECENT_QUERIES:
                self._queries.popitem(last=False)
        else:
            self._queries.move_to_end(query)
        return vector

    def _first_pass(
        self, matrix: _Matrix, count: int, query: str, vector: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], float]:
        """First-pass scores of the first `count` rows (a copy) and their error bound.

        bfloat16 from the high plane of a split matrix; float32 (error 0) otherwise.
        Scores kept from the question's last search are reused: only rows appended
        since are scored.
        """
        kept = matrix.first_passes.pop(query, None)
        if kept is None or len(kept) < count:
            done = 0 if kept is None else len(kept)
            if matrix.split:
                more = _bfloat16_scores(self._torch, matrix.high[done:count], vector)
            else:
                more = _dot(matrix.vectors[done:count], vector)
            kept = more if kept is None else np.concatenate((kept, more))
        matrix.first_passes[query] = kept
        while len(matrix.first_passes) > RECENT_QUERIES:
            matrix.first_passes.popitem(last=False)
        error = _first_pass_error(matrix.norm, vector) if matrix.split else 0.0
        return kept[:count].copy(), error

    def _best_usable(
        self, ids: NDArray[np.int64], ranking: _Ranking, limit: int
    ) -> list[tuple[int, float]]:
        """The `limit` best-scoring ids whose messages may be shown, best first."""
        candidates = ranking.candidates()
        want = min(candidates, limit * OVERFETCH + 4)
        while True:
            top = ranking.top(want)
            records = {r.id: r for r in self.store.messages_by_ids([int(ids[i]) for i, _ in top])}
            hits = [
                (int(ids[i]), score)
                for i, score in top
                if int(ids[i]) in records and usable(records[int(ids[i])])
            ]
            if len(hits) >= limit or want >= candidates:
                return hits[:limit]
            want = min(candidates, want * 2)

    def _synced(self, conversation_id: int, through_seq: int) -> _Matrix:
        """The conversation's matrix, complete up to `through_seq` but for lazily limited gaps."""
        matrix = self._matrices.get(conversation_id)
        if matrix is None:
            matrix = _Matrix(self.embedder.dim, split=self._first_pass_torch() is not None)
        else:
            self._matrices.move_to_end(conversation_id)
        if through_seq > matrix.covered:
            self._extend(conversation_id, matrix, through_seq)
        if conversation_id not in self._matrices:
            # Kept only once loaded: an unknown conversation leaves nothing behind.
            self._matrices[conversation_id] = matrix
            while len(self._matrices) > self.max_conversations:
                self._matrices.popitem(last=False)
        return matrix

    def _first_pass_torch(self) -> Any:
        """torch for the bfloat16 first pass, or None (not installed, or `bfloat16` off).

        Imported on first need: the local embedder and runtime have usually loaded
        it already; with a remote embedder this costs a second or two, once.
        """
        if not self._torch_checked:
            self._torch_checked = True
            if self.bfloat16 and importlib.util.find_spec("torch") is not None:
                self._torch = importlib.import_module("torch")
        return self._torch

    def _extend(self, conversation_id: int, matrix: _Matrix, through_seq: int) -> None:
        """Move the matrix's covered mark toward `through_seq`, computing missing vectors."""
        # Never past the last stored message: one appended later must still be read.
        through_seq = min(through_seq, self.store.get_conversation(conversation_id).last_seq)
        if through_seq <= matrix.covered:
            return
        # Compute the stretch's missing vectors first, then read all its stored ones:
        # a vector stored meanwhile by another writer is then read as well.
        missing = self.store.messages_without_embedding(
            conversation_id,
            self.embedder_id,
            limit=self.lazy_limit,
            after_seq=matrix.covered,
            through_seq=through_seq,
        )
        reach = through_seq
        if missing:
            self._embed_and_store(missing)
            if len(missing) == self.lazy_limit:
                # The limit was reached: cover up to the next message still without a vector.
                after = self.store.messages_without_embedding(
                    conversation_id,
                    self.embedder_id,
                    limit=1,
                    after_seq=missing[-1].seq,
                    through_seq=through_seq,
                )
                reach = after[0].seq - 1 if after else through_seq
        matrix.append(
            self.store.embeddings(
                conversation_id, self.embedder_id, after_seq=matrix.covered, through_seq=reach
            )
        )
        matrix.covered = reach

    def warm(self, conversation_id: int) -> int:
        """Load the conversation's matrix now (e.g. in a worker when it is opened); its size.

        The first search of a long conversation otherwise pays for the load:
        about 2 s on SQLite and 5 s on PostgreSQL for 100,000 vectors on 2 busy cores.
        """
        with self._lock:
            # Up to the last message: `_synced` bounds any reach by the last seq.
            return self._synced(conversation_id, sys.maxsize).size

    def forget(self, conversation_id: int) -> None:
        """Drop the conversation's matrix (it is read again from the store on its next search)."""
        with self._lock:
            self._matrices.pop(conversation_id, None)

    def loaded(self, conversation_id: int) -> int:
        """How many of the conversation's vectors are held in memory now."""
        with self._lock:
            matrix = self._matrices.get(conversation_id)
            return 0 if matrix is None else matrix.size
