"""Token-count queries: per-message counts cached by tokenizer, and window totals.

A window's size is then a sum of stored numbers, not a re-count of its text.
`new_rows` validates and touches no database, so `Store` runs it before it opens
a transaction; functions that take a `Session` run inside that transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from recursa.memory import conversations, messages
from recursa.memory import validation as check
from recursa.memory.errors import InvalidInputError, NotFoundError
from recursa.memory.models import MessageRow, TokenCountRow
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def cached(session: Session, message_ids: Sequence[int], tokenizer_id: str) -> dict[int, int]:
    """Stored counts under `tokenizer_id` for those of the (validated) ids that have one."""
    counts: dict[int, int] = {}
    for chunk in messages.chunks(message_ids):
        rows = session.execute(
            select(TokenCountRow.message_id, TokenCountRow.count).where(
                TokenCountRow.tokenizer_id == tokenizer_id,
                TokenCountRow.message_id.in_(chunk),
            )
        )
        counts.update({int(mid): int(count) for mid, count in rows})
    return counts


def new_rows(tokenizer_id: str, counts: Mapping[int, int]) -> list[dict[str, Any]]:
    """The validated rows for counts given as message id -> count."""
    check.text("tokenizer_id", tokenizer_id)
    if not isinstance(counts, Mapping):
        raise InvalidInputError("counts must be a mapping of message id to token count.")
    return [
        {
            "message_id": check.integer("message id", mid),
            "tokenizer_id": tokenizer_id,
            "count": check.integer("token count", count, minimum=0),
        }
        for mid, count in counts.items()
    ]


def upsert(session: Session, rows: Sequence[dict[str, Any]], dialect: str) -> None:
    """Store `rows` (from `new_rows`), replacing older counts; NotFoundError for unknown ids."""
    missing = messages.missing_ids(session, [row["message_id"] for row in rows])
    if missing:
        raise NotFoundError(f"No messages with ids {sorted(missing)} in this database.")
    upsert_factory = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = upsert_factory(TokenCountRow)
    statement = statement.on_conflict_do_update(
        index_elements=["message_id", "tokenizer_id"],
        set_={"count": statement.excluded.count},
    )
    session.execute(statement, rows)


def window_total(session: Session, conversation_id: int, after_seq: int, tokenizer_id: str) -> int:
    """Sum of cached counts of the messages with seq > after_seq (uncached ones count 0)."""
    # A correlated scalar subquery, not a join: it pins the plan to "walk the window
    # on (conversation_id, seq), look each count up by primary key". With a join,
    # PostgreSQL misjudges how many rows seq > after_seq leaves in mid-sized
    # conversations and hashes the whole token-count table: a cost that grows
    # with every conversation's history instead of with the window.
    count = (
        select(TokenCountRow.count)
        .where(
            TokenCountRow.message_id == MessageRow.id,
            TokenCountRow.tokenizer_id == tokenizer_id,
        )
        .correlate(MessageRow)
        .scalar_subquery()
    )
    statement = select(func.coalesce(func.sum(count), 0)).where(
        MessageRow.conversation_id == conversation_id, MessageRow.seq > after_seq
    )
    conversations.require(session, conversation_id)
    return int(session.scalar(statement) or 0)
