"""Embedding queries: message vectors stored per embedder, read per conversation by seq range.

Every query is keyed by the embedder's id, so vectors of two embedders never
mix. A vector is `dim` float32 values, little-endian, stored as bytes; this
module checks their size and never interprets them. `new_rows` validates and
touches no database, so `Store` runs it before it opens a transaction; functions
that take a `Session` run inside that transaction.

Which messages get a vector: those a prompt could show, that is every message
whose status is not "error" and whose content is not empty. (A reply marked
superseded later keeps its vector; readers filter such messages when they use
them, since the mark can come after the vector.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from recursa.memory import conversations, messages
from recursa.memory import validation as check
from recursa.memory.errors import InvalidInputError, NotFoundError
from recursa.memory.models import EmbeddingRow, MessageRow, utcnow
from recursa.memory.records import MessageRecord, StoredEmbedding
from sqlalchemy import ColumnElement, Select, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

# Bytes per stored value: float32.
VALUE_BYTES: Final = 4
# The longest embedder id the column holds (an HTTP embedder's id carries its URL).
MAX_EMBEDDER_ID: Final = 500


def embedder_id_value(embedder_id: object) -> str:
    """The validated embedder id."""
    value = check.text("embedder_id", embedder_id)
    if len(value) > MAX_EMBEDDER_ID:
        raise InvalidInputError(
            f"embedder_id is {len(value)} characters long; at most {MAX_EMBEDDER_ID} are stored."
        )
    return value


def new_rows(embedder_id: str, dim: int, items: Mapping[int, bytes]) -> list[dict[str, Any]]:
    """The validated rows (conversation and seq come later) of vectors given as id -> bytes."""
    embedder = embedder_id_value(embedder_id)
    size = check.integer("dim", dim, minimum=1) * VALUE_BYTES
    if not isinstance(items, Mapping):
        raise InvalidInputError("items must be a mapping of message id to vector bytes.")
    now = utcnow()
    rows = []
    for mid, vector in items.items():
        check.integer("message id", mid)
        if not isinstance(vector, bytes | bytearray | memoryview):
            raise InvalidInputError(
                f"The vector of message {mid} must be bytes, not {type(vector).__name__}."
            )
        data = bytes(vector)
        if len(data) != size:
            raise InvalidInputError(
                f"The vector of message {mid} has {len(data)} bytes; {dim} float32 values "
                f"take {size}."
            )
        rows.append(
            {
                "message_id": mid,
                "embedder_id": embedder,
                "dim": dim,
                "vector": data,
                "created_at": now,
            }
        )
    return rows


def add(session: Session, rows: Sequence[dict[str, Any]], dialect: str) -> None:
    """Store `rows` (from `new_rows`); a vector already stored for (message, embedder) is kept.

    Each row gets its message's conversation and seq; NotFoundError names unknown ids.
    """
    placed: dict[int, tuple[int, int]] = {}
    ids = [row["message_id"] for row in rows]
    for chunk in messages.chunks(ids):
        statement = select(MessageRow.id, MessageRow.conversation_id, MessageRow.seq).where(
            MessageRow.id.in_(chunk)
        )
        placed.update({mid: (cid, seq) for mid, cid, seq in session.execute(statement)})
    missing = set(ids) - set(placed)
    if missing:
        raise NotFoundError(f"No messages with ids {sorted(missing)} in this database.")
    values = [
        {
            **row,
            "conversation_id": placed[row["message_id"]][0],
            "seq": placed[row["message_id"]][1],
        }
        for row in rows
    ]
    insert_factory = pg_insert if dialect == "postgresql" else sqlite_insert
    # Two writers may embed the same message at once (a turn and a backfill, or two
    # processes): the vectors are the same, so the first one stored stays.
    upsert = insert_factory(EmbeddingRow).on_conflict_do_nothing(
        index_elements=["message_id", "embedder_id"]
    )
    session.execute(upsert, values)


def range_query(
    conversation_id: int, embedder_id: str, *, after_seq: int, through_seq: int | None
) -> Select[Any]:
    """The validated statement for a conversation's vectors with after_seq < seq <= through_seq."""
    check.integer("conversation_id", conversation_id)
    check.integer("after_seq", after_seq)
    statement = select(EmbeddingRow.message_id, EmbeddingRow.seq, EmbeddingRow.vector).where(
        EmbeddingRow.conversation_id == conversation_id,
        EmbeddingRow.embedder_id == embedder_id_value(embedder_id),
        EmbeddingRow.seq > after_seq,
    )
    if through_seq is not None:
        statement = statement.where(EmbeddingRow.seq <= check.integer("through_seq", through_seq))
    return statement.order_by(EmbeddingRow.seq)


def fetch(session: Session, conversation_id: int, statement: Select[Any]) -> list[StoredEmbedding]:
    """The vectors a statement from `range_query` selects, in seq order."""
    conversations.require(session, conversation_id)
    return [
        StoredEmbedding(int(mid), int(seq), bytes(vec))
        for mid, seq, vec in session.execute(statement)
    ]


def stored_ids(session: Session, message_ids: Sequence[int], embedder_id: str) -> set[int]:
    """Those of the (validated) `message_ids` that have a vector under `embedder_id`."""
    found: set[int] = set()
    for chunk in messages.chunks(message_ids):
        found.update(
            session.scalars(
                select(EmbeddingRow.message_id).where(
                    EmbeddingRow.embedder_id == embedder_id, EmbeddingRow.message_id.in_(chunk)
                )
            )
        )
    return found


def count_query(conversation_id: int, embedder_id: str) -> Select[Any]:
    """The validated statement counting the conversation's vectors under `embedder_id`."""
    check.integer("conversation_id", conversation_id)
    return (
        select(func.count())
        .select_from(EmbeddingRow)
        .where(
            EmbeddingRow.conversation_id == conversation_id,
            EmbeddingRow.embedder_id == embedder_id_value(embedder_id),
        )
    )


def scalar_count(session: Session, conversation_id: int, statement: Select[Any]) -> int:
    """The number a statement from `count_query` or `count_missing_query` counts."""
    conversations.require(session, conversation_id)
    return int(session.scalar(statement) or 0)


def _missing_filter(
    conversation_id: int, embedder_id: str, after_seq: int, through_seq: int | None
) -> list[ColumnElement[bool]]:
    """Messages of the conversation in the seq range that should have a vector and have none."""
    # NOT EXISTS on the primary key (message_id, embedder_id): one index probe per
    # message of the range, which the (conversation_id, seq) index bounds.
    has_vector = exists().where(
        EmbeddingRow.message_id == MessageRow.id, EmbeddingRow.embedder_id == embedder_id
    )
    conditions: list[ColumnElement[bool]] = [
        MessageRow.conversation_id == conversation_id,
        MessageRow.seq > after_seq,
        MessageRow.status != "error",
        MessageRow.content != "",
        ~has_vector,
    ]
    if through_seq is not None:
        conditions.append(MessageRow.seq <= through_seq)
    return conditions


def missing_query(
    conversation_id: int,
    embedder_id: str,
    *,
    limit: int | None,
    after_seq: int,
    through_seq: int | None,
) -> Select[Any]:
    """The validated statement for the first `limit` messages without a vector, in seq order."""
    check.integer("conversation_id", conversation_id)
    check.integer("after_seq", after_seq)
    check.optional_integer("through_seq", through_seq)
    statement = (
        select(MessageRow)
        .where(
            *_missing_filter(
                conversation_id, embedder_id_value(embedder_id), after_seq, through_seq
            )
        )
        .order_by(MessageRow.seq)
    )
    if limit is not None:
        statement = statement.limit(check.integer("limit", limit, minimum=0))
    return statement


def missing(session: Session, conversation_id: int, statement: Select[Any]) -> list[MessageRecord]:
    """The messages a statement from `missing_query` selects, in seq order."""
    conversations.require(session, conversation_id)
    return messages.fetch(session, statement)


def count_missing_query(conversation_id: int, embedder_id: str) -> Select[Any]:
    """The validated statement counting the conversation's messages still without a vector."""
    check.integer("conversation_id", conversation_id)
    return (
        select(func.count())
        .select_from(MessageRow)
        .where(*_missing_filter(conversation_id, embedder_id_value(embedder_id), 0, None))
    )
