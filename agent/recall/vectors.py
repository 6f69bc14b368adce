"""VectorIndex: semantic search over a conversation's stored message vectors, held in memory.

Vectors are computed by an `Embedder`, stored per message and embedder
(`Store.add_embeddings`), and searched by cosine similarity. Reading every
vector of a long conversation from SQL on each turn would cost as much as the
conversation is long, so each conversation's vectors are kept in one float32
matrix that is loaded once and then only appended to.

How the matrix stays complete: the index remembers, per conversation, a seq up
to which it holds the vector of every message that should have one (status not
"error", content not empty). A search up to `before_seq` first moves that mark:
it asks the store for the messages in the new stretch that have no vector yet
and computes those (at most `lazy_limit` per search: a missing vector is
computed on use), then reads that stretch's stored vectors, in seq order. So a
turn reads from SQL only what was added since the last one, the vectors that
other processes or a backfill stored included. Memory: 4 × dim bytes a message
(1.5 KiB with all-MiniLM-L6-v2; 150 MiB for 100,000 messages), for the
`max_conversations` most recently searched conversations.

Messages marked superseded or failed are never returned (the mark can come
after the vector, so it is checked when a hit is returned). Thread-safe: the TUI
searches and backfills from worker threads.
"""

from __future__ import annotations

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
    its row here. Rows live in buffers kept an eighth larger than needed, so the
    few rows a turn appends copy the whole matrix only once in thousands of turns.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.size = 0
        self.covered = 0
        self.vectors: NDArray[np.float32] = np.empty((0, dim), dtype=np.float32)
        self.ids: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.seqs: NDArray[np.int64] = np.empty(0, dtype=np.int64)

    def append(self, rows: Sequence[StoredEmbedding]) -> None:
        rows = [row for row in rows if len(row.vector) == 4 * self.dim]
        if not rows:
            return
        needed = self.size + len(rows)
        if needed > len(self.ids):
            # Not doubled: a large first load would reserve as much again, unused.
            capacity = needed + max(needed // 8, 64)
            self.vectors = _grown(self.vectors, capacity)
            self.ids = _grown(self.ids, capacity)
            self.seqs = _grown(self.seqs, capacity)
        end = self.size + len(rows)
        block = np.frombuffer(b"".join(row.vector for row in rows), dtype="<f4")
        self.vectors[self.size : end] = block.reshape(len(rows), self.dim)
        self.ids[self.size : end] = [row.message_id for row in rows]
        self.seqs[self.size : end] = [row.seq for row in rows]
        self.size = end


def _grown(array: NDArray[Any], rows: int) -> NDArray[Any]:
    # Rows past `size` are never read, so they need no zeroing.
    grown = np.empty((rows, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


class VectorIndex:
    """Embeds, stores and searches one embedder's message vectors, conversation by conversation.

    `store` is where vectors persist (keyed by the embedder's id, so two
    embedders never mix); `embedder` computes them. Errors of the embedder
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
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.batch_size = max(1, batch_size)
        # At least one, or the covered mark could pass a message that has no vector.
        self.lazy_limit = max(1, lazy_limit)
        self.max_conversations = max(1, max_conversations)
        self._matrices: OrderedDict[int, _Matrix] = OrderedDict()
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
            query_vector = self.embedder.embed([query])[0]
            scores = matrix.vectors[:count] @ query_vector
            ids = matrix.ids[:count].copy()
        if exclude:
            scores[np.isin(ids, np.fromiter(exclude, dtype=np.int64))] = -np.inf
        return self._best_usable(ids, scores, limit)

    def _best_usable(
        self, ids: NDArray[np.int64], scores: NDArray[np.float32], limit: int
    ) -> list[tuple[int, float]]:
        """The `limit` best-scoring ids whose messages may be shown, best first."""
        candidates = int(np.isfinite(scores).sum())
        want = min(candidates, limit * OVERFETCH + 4)
        while True:
            top = _top(scores, want)
            records = {r.id: r for r in self.store.messages_by_ids([int(ids[i]) for i in top])}
            hits = [
                (int(ids[i]), float(scores[i]))
                for i in top
                if int(ids[i]) in records and usable(records[int(ids[i])])
            ]
            if len(hits) >= limit or want >= candidates:
                return hits[:limit]
            want = min(candidates, want * 2)

    def _synced(self, conversation_id: int, through_seq: int) -> _Matrix:
        """The conversation's matrix, complete up to `through_seq` but for lazily limited gaps."""
        matrix = self._matrices.get(conversation_id)
        if matrix is None:
            matrix = _Matrix(self.embedder.dim)
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


def _top(scores: NDArray[np.float32], count: int) -> list[int]:
    """Indices of the `count` highest scores, highest first (ties: the older message first)."""
    if count <= 0:
        return []
    if count < len(scores):
        part = np.argpartition(-scores, count - 1)[:count]
    else:
        part = np.arange(len(scores))
    order = sorted(part.tolist(), key=lambda i: (-float(scores[i]), i))
    return [i for i in order if np.isfinite(scores[i])]
