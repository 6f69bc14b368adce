"""Message queries: append in sequence order, read by id, range or pin, and update.

Functions that build rows, statements or changes validate their input and touch
no database, so `Store` runs them before it opens a transaction; functions that
take a `Session` run inside the transaction `Store` opened for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, get_args

from recursa.memory import conversations
from recursa.memory import validation as check
from recursa.memory.errors import InvalidInputError, NotFoundError
from recursa.memory.models import EmbeddingRow, MessageRow, TokenCountRow, utcnow
from recursa.memory.records import (
    UNSET,
    MessageRecord,
    MessageRole,
    MessageStatus,
    NewMessage,
    Unset,
)
from sqlalchemy import Select, and_, delete, insert, or_, select
from sqlalchemy.orm import Session

ROLES: Final = frozenset(get_args(MessageRole))
STATUSES: Final = frozenset(get_args(MessageStatus))
# Ids per IN (...) list: well under SQLite's bound-parameter limit.
ID_CHUNK: Final = 500


def chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    """`ids` in slices short enough for one IN (...) list."""
    for start in range(0, len(ids), ID_CHUNK):
        yield ids[start : start + ID_CHUNK]


def not_found(message_id: int) -> NotFoundError:
    """The error for an unknown message id."""
    return NotFoundError(f"No message with id {message_id} in this database.")


def insert_values(conversation_id: int, seq: int, item: NewMessage) -> dict[str, Any]:
    """The validated column values of a new message (its `seq` is set when it is allocated)."""
    check.choice("role", item.role, ROLES)
    status = check.choice("status", item.status, STATUSES)
    # An assistant reply may legitimately be empty (cut off before its first token).
    content = check.text("content", item.content, allow_empty=item.role == "assistant")
    return {
        "conversation_id": conversation_id,
        "seq": seq,
        "role": item.role,
        "content": content,
        "status": status,
        "meta": check.json_value(
            "metadata", item.metadata if item.metadata is not None else {}, dict
        ),
        "created_at": check.timestamp("created_at", item.created_at) or utcnow(),
        "pinned": check.boolean("pinned", item.pinned),
    }


def new_rows(conversation_id: int, items: Sequence[NewMessage]) -> list[dict[str, Any]]:
    """The validated values of messages to append, all checked before any is written."""
    check.integer("conversation_id", conversation_id)
    if not all(isinstance(item, NewMessage) for item in items):
        raise InvalidInputError("append_messages takes a sequence of NewMessage.")
    return [insert_values(conversation_id, 0, item) for item in items]


def append(
    session: Session, conversation_id: int, rows: Sequence[dict[str, Any]]
) -> list[MessageRecord]:
    """Append `rows` (from `new_rows`) with the conversation's next sequence numbers."""
    first = conversations.allocate_seq(session, conversation_id, len(rows))
    for offset, row in enumerate(rows):
        row["seq"] = first + offset
    inserted = session.scalars(
        insert(MessageRow).returning(MessageRow, sort_by_parameter_order=True), rows
    ).all()
    return [MessageRecord.from_row(row) for row in inserted]


def get(session: Session, message_id: int) -> MessageRecord:
    """One message by id; NotFoundError if unknown."""
    row = session.get(MessageRow, message_id)
    if row is None:
        raise not_found(message_id)
    return MessageRecord.from_row(row)


def changes(
    *,
    status: MessageStatus | Unset,
    metadata: Mapping[str, Any] | Unset,
    pinned: bool | Unset,
    rating: int | None | Unset,
) -> dict[str, Any]:
    """The validated column values to change (content is checked against the row's role)."""
    values: dict[str, Any] = {}
    if status is not UNSET:
        values["status"] = check.choice("status", status, STATUSES)
    if metadata is not UNSET:
        values["meta"] = check.json_value("metadata", metadata, dict)
    if pinned is not UNSET:
        values["pinned"] = check.boolean("pinned", pinned)
    if rating is not UNSET:
        values["rating"] = check.optional_integer("rating", rating)
    return values


def apply_changes(
    session: Session, message_id: int, values: Mapping[str, Any], content: str | Unset
) -> MessageRecord:
    """Apply `changes`' result and a new content; a changed content drops its counts and vectors."""
    row = session.get(MessageRow, message_id)
    if row is None:
        raise not_found(message_id)
    updates = dict(values)
    if content is not UNSET:
        updates["content"] = check.text("content", content, allow_empty=row.role == "assistant")
        if updates["content"] != row.content:
            # The cached counts and vectors were of the old text: stale counts would
            # mis-size the window, stale vectors would recall it for what it no longer says.
            session.execute(delete(TokenCountRow).where(TokenCountRow.message_id == message_id))
            session.execute(delete(EmbeddingRow).where(EmbeddingRow.message_id == message_id))
    for key, value in updates.items():
        setattr(row, key, value)
    session.flush()
    return MessageRecord.from_row(row)


# Statements are typed Select[Any]: SQLAlchemy 2.0 spells the row type
# Select[tuple[Row]] and 2.1 Select[Row], and both are supported.
def range_query(
    conversation_id: int,
    *,
    after_seq: int,
    through_seq: int | None,
    limit: int | None,
    newest_first: bool,
) -> Select[Any]:
    """The validated statement for after_seq < seq <= through_seq, in seq order or newest first."""
    check.integer("after_seq", after_seq)
    statement = select(MessageRow).where(
        MessageRow.conversation_id == conversation_id, MessageRow.seq > after_seq
    )
    if through_seq is not None:
        statement = statement.where(MessageRow.seq <= check.integer("through_seq", through_seq))
    statement = statement.order_by(MessageRow.seq.desc() if newest_first else MessageRow.seq)
    if limit is not None:
        statement = statement.limit(check.integer("limit", limit, minimum=0))
    return statement


def between_query(
    conversation_id: int,
    spans: Sequence[tuple[datetime, datetime]],
    *,
    before_seq: int | None,
    limit: int,
) -> Select[Any]:
    """The statement for messages created in any of the [start, end) `spans`, in seq order."""
    statement = select(MessageRow).where(
        MessageRow.conversation_id == conversation_id,
        or_(*(and_(MessageRow.created_at >= a, MessageRow.created_at < b) for a, b in spans)),
    )
    if before_seq is not None:
        statement = statement.where(MessageRow.seq < check.integer("before_seq", before_seq))
    return statement.order_by(MessageRow.seq).limit(check.integer("limit", limit, minimum=0))


def at_seqs_query(conversation_id: int, seqs: Sequence[int]) -> Select[Any]:
    """The statement for the messages at these sequence numbers, in seq order."""
    return (
        select(MessageRow)
        .where(MessageRow.conversation_id == conversation_id, MessageRow.seq.in_(list(seqs)))
        .order_by(MessageRow.seq)
    )


def fetch(session: Session, statement: Select[Any]) -> list[MessageRecord]:
    """The messages a statement from `range_query` selects, in its order."""
    return [MessageRecord.from_row(row) for row in session.scalars(statement)]


def by_ids(session: Session, ids: Sequence[int]) -> list[MessageRecord]:
    """These (distinct, validated) ids' messages in (conversation, seq) order.

    NotFoundError names every id that is missing.
    """
    found: list[MessageRow] = []
    for chunk in chunks(ids):
        found.extend(session.scalars(select(MessageRow).where(MessageRow.id.in_(chunk))))
    missing = set(ids) - {row.id for row in found}
    if missing:
        raise NotFoundError(f"No messages with ids {sorted(missing)} in this database.")
    found.sort(key=lambda row: (row.conversation_id, row.seq))
    return [MessageRecord.from_row(row) for row in found]


def missing_ids(session: Session, ids: Sequence[int]) -> set[int]:
    """Those of `ids` that name no stored message."""
    present: set[int] = set()
    for chunk in chunks(ids):
        present.update(session.scalars(select(MessageRow.id).where(MessageRow.id.in_(chunk))))
    return set(ids) - present


def pinned(session: Session, conversation_id: int) -> list[MessageRecord]:
    """The conversation's pinned messages, in seq order; NotFoundError if it is unknown."""
    # `pinned = 1` (SQLite) / `pinned` (PostgreSQL) is the predicate of the partial
    # index ix_messages_pinned, so the planner reads only the pins; `IS true`, say,
    # would not match it and the query would scan the whole conversation.
    statement = (
        select(MessageRow)
        .where(MessageRow.conversation_id == conversation_id, MessageRow.pinned)
        .order_by(MessageRow.seq)
    )
    conversations.require(session, conversation_id)
    return fetch(session, statement)


def all_of(session: Session, conversation_id: int) -> list[MessageRecord]:
    """Every message of a conversation, in seq order."""
    statement = (
        select(MessageRow)
        .where(MessageRow.conversation_id == conversation_id)
        .order_by(MessageRow.seq)
    )
    return fetch(session, statement)
