"""Summary queries: the recursive summary chain, its head, and adding its next link.

`new_row` validates and touches no database, so `Store` runs it before it opens
a transaction; functions that take a `Session` run inside that transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recursa.memory import conversations
from recursa.memory import validation as check
from recursa.memory.errors import CompactionConflict, InvalidInputError, NotFoundError
from recursa.memory.models import SummaryRow, utcnow
from recursa.memory.records import SummaryRecord
from sqlalchemy import select
from sqlalchemy.orm import Session


def latest_row(session: Session, conversation_id: int) -> SummaryRow | None:
    """The head of the chain: the summary covering furthest (the newest among equals)."""
    return session.scalars(
        select(SummaryRow)
        .where(SummaryRow.conversation_id == conversation_id)
        .order_by(SummaryRow.covers_through_seq.desc(), SummaryRow.id.desc())
        .limit(1)
    ).first()


def latest(session: Session, conversation_id: int) -> SummaryRecord | None:
    """The head of the summary chain, or None before the first compaction."""
    conversations.require(session, conversation_id)
    row = latest_row(session, conversation_id)
    return None if row is None else SummaryRecord.from_row(row)


def chain(session: Session, conversation_id: int) -> list[SummaryRecord]:
    """The chain from the latest summary back to the first, following parent ids."""
    conversations.require(session, conversation_id)
    rows = {
        row.id: row
        for row in session.scalars(
            select(SummaryRow).where(SummaryRow.conversation_id == conversation_id)
        )
    }
    head = latest_row(session, conversation_id)
    links: list[SummaryRecord] = []
    while head is not None:
        links.append(SummaryRecord.from_row(head))
        head = rows.get(head.parent_id) if head.parent_id is not None else None
    return links


def get(session: Session, summary_id: int) -> SummaryRecord:
    """One summary by id; NotFoundError if unknown."""
    row = session.get(SummaryRow, summary_id)
    if row is None:
        raise NotFoundError(f"No summary with id {summary_id} in this database.")
    return SummaryRecord.from_row(row)


def all_of(session: Session, conversation_id: int) -> list[SummaryRecord]:
    """Every summary of a conversation, in the order they were stored."""
    rows = session.scalars(
        select(SummaryRow)
        .where(SummaryRow.conversation_id == conversation_id)
        .order_by(SummaryRow.id)
    )
    return [SummaryRecord.from_row(row) for row in rows]


def new_row(
    conversation_id: int,
    *,
    content: str,
    covers_from_seq: int,
    covers_through_seq: int,
    parent_id: int | None,
    token_count: int,
    tokenizer_id: str | None,
    model: str | None,
    prompt_version: str | None,
    metadata: Mapping[str, Any] | None,
) -> SummaryRow:
    """A validated, not yet added summary row (its depth is set by `add`)."""
    row = SummaryRow(
        conversation_id=check.integer("conversation_id", conversation_id),
        content=check.text("content", content),
        covers_from_seq=check.integer("covers_from_seq", covers_from_seq, minimum=1),
        covers_through_seq=check.integer("covers_through_seq", covers_through_seq, minimum=1),
        parent_id=check.optional_integer("parent_id", parent_id),
        token_count=check.integer("token_count", token_count, minimum=0),
        tokenizer_id=check.optional_text("tokenizer_id", tokenizer_id),
        model=check.optional_text("model", model),
        prompt_version=check.optional_text("prompt_version", prompt_version),
        meta=check.json_value("metadata", metadata if metadata is not None else {}, dict),
        created_at=utcnow(),
    )
    if covers_from_seq > covers_through_seq:
        raise InvalidInputError(
            f"covers_from_seq ({covers_from_seq}) is after "
            f"covers_through_seq ({covers_through_seq})."
        )
    return row


def add(session: Session, row: SummaryRow) -> SummaryRecord:
    """Store `row` (from `new_row`) as the next link of its conversation's chain.

    CompactionConflict when its parent is not the conversation's latest summary
    (another process compacted first) or the coverage does not move past the
    parent's; InvalidInputError when it reaches past the last message.
    """
    conversation_id = row.conversation_id
    # The row lock (PostgreSQL) / BEGIN IMMEDIATE (SQLite) makes check-then-insert atomic.
    conversation = conversations.get_row(session, conversation_id, lock=True)
    latest = latest_row(session, conversation_id)
    latest_id = latest.id if latest is not None else None
    if latest_id != row.parent_id:
        raise CompactionConflict(
            f"Conversation {conversation_id}'s latest summary is {latest_id}, not "
            f"{row.parent_id}: another writer compacted first. Rebuild the prompt and retry."
        )
    floor = latest.covers_through_seq if latest is not None else 0
    if row.covers_through_seq <= floor:
        raise CompactionConflict(
            f"The new summary covers through seq {row.covers_through_seq}, which does not "
            f"move past its parent's coverage ({floor})."
        )
    if row.covers_through_seq > conversation.last_seq:
        raise InvalidInputError(
            f"covers_through_seq {row.covers_through_seq} is past the conversation's last "
            f"message (seq {conversation.last_seq})."
        )
    row.depth = latest.depth + 1 if latest is not None else 1
    session.add(row)
    session.flush()
    return SummaryRecord.from_row(row)
