"""Conversation queries: create, read, list, update and delete, and message numbering.

Functions that build rows, statements or changes validate their input and touch
no database, so `Store` runs them before it opens a transaction; functions that
take a `Session` run inside the transaction `Store` opened for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, get_args

from recursa.memory import validation as check
from recursa.memory.errors import NotFoundError
from recursa.memory.models import (
    ConversationRow,
    EmbeddingRow,
    ImportRow,
    MessageRow,
    PromptTraceRow,
    SummaryRow,
    TokenCountRow,
    utcnow,
)
from recursa.memory.records import UNSET, ConversationKind, ConversationRecord, Unset
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

KINDS: Final = frozenset(get_args(ConversationKind))


def not_found(conversation_id: int) -> NotFoundError:
    """The error for an unknown conversation id, naming how to list the known ones."""
    return NotFoundError(
        f"No conversation with id {conversation_id}: list them with `recursa conversations list`."
    )


def new_row(
    *,
    title: str | None,
    system_prompt: str | None,
    model: str | None,
    kind: ConversationKind,
    settings: Mapping[str, Any] | None,
) -> ConversationRow:
    """A validated, not yet added row for a new, empty conversation."""
    now = utcnow()
    return ConversationRow(
        title=check.optional_text("title", title),
        system_prompt=check.optional_text("system_prompt", system_prompt),
        model=check.optional_text("model", model),
        kind=check.choice("kind", kind, KINDS),
        settings=check.json_value("settings", settings if settings is not None else {}, dict),
        archived=False,
        created_at=now,
        updated_at=now,
        last_seq=0,
    )


def add(session: Session, row: ConversationRow) -> ConversationRecord:
    """Insert a row made by `new_row`."""
    session.add(row)
    session.flush()
    return ConversationRecord.from_row(row)


def get_row(session: Session, conversation_id: int, *, lock: bool = False) -> ConversationRow:
    """The conversation's row (locked for update when `lock`); NotFoundError if unknown."""
    check.integer("conversation_id", conversation_id)
    statement = select(ConversationRow).where(ConversationRow.id == conversation_id)
    if lock:
        statement = statement.with_for_update()
    row = session.scalars(statement).one_or_none()
    if row is None:
        raise not_found(conversation_id)
    return row


def get(session: Session, conversation_id: int) -> ConversationRecord:
    """One conversation; NotFoundError if the id is unknown."""
    return ConversationRecord.from_row(get_row(session, conversation_id))


def require(session: Session, conversation_id: int) -> None:
    """Raise NotFoundError unless the conversation exists (reads only its id)."""
    check.integer("conversation_id", conversation_id)
    found = session.scalar(select(ConversationRow.id).where(ConversationRow.id == conversation_id))
    if found is None:
        raise not_found(conversation_id)


# Statements are typed Select[Any]: SQLAlchemy 2.0 spells the row type
# Select[tuple[Row]] and 2.1 Select[Row], and both are supported.
def list_query(
    *,
    include_archived: bool,
    kind: ConversationKind | None,
    limit: int | None,
    offset: int,
) -> Select[Any]:
    """The validated listing statement: most recently active first."""
    statement = select(ConversationRow).order_by(
        ConversationRow.updated_at.desc(), ConversationRow.id.desc()
    )
    if not include_archived:
        statement = statement.where(ConversationRow.archived.is_(False))
    if kind is not None:
        statement = statement.where(ConversationRow.kind == check.choice("kind", kind, KINDS))
    if limit is not None:
        statement = statement.limit(check.integer("limit", limit, minimum=0))
    if offset:
        statement = statement.offset(check.integer("offset", offset, minimum=0))
    return statement


def fetch(session: Session, statement: Select[Any]) -> list[ConversationRecord]:
    """The conversations a statement from `list_query` selects."""
    return [ConversationRecord.from_row(row) for row in session.scalars(statement)]


def changes(
    *,
    title: str | None | Unset,
    system_prompt: str | None | Unset,
    model: str | None | Unset,
    settings: Mapping[str, Any] | Unset,
    archived: bool | Unset,
    updated_at: datetime | Unset,
) -> tuple[dict[str, Any], datetime | None]:
    """The validated column values to change, and the activity time to stamp (if given)."""
    stamp = check.timestamp("updated_at", updated_at) if updated_at is not UNSET else None
    values: dict[str, Any] = {}
    if title is not UNSET:
        values["title"] = check.optional_text("title", title)
    if system_prompt is not UNSET:
        values["system_prompt"] = check.optional_text("system_prompt", system_prompt)
    if model is not UNSET:
        values["model"] = check.optional_text("model", model)
    if settings is not UNSET:
        values["settings"] = check.json_value("settings", settings, dict)
    if archived is not UNSET:
        values["archived"] = check.boolean("archived", archived)
    return values, stamp


def apply_changes(
    session: Session, conversation_id: int, values: Mapping[str, Any], stamp: datetime | None
) -> ConversationRecord:
    """Apply `changes`' result; any change stamps the last activity (now, unless `stamp`)."""
    row = get_row(session, conversation_id, lock=True)
    for key, value in values.items():
        setattr(row, key, value)
    if values or stamp is not None:
        row.updated_at = stamp or utcnow()
    session.flush()
    return ConversationRecord.from_row(row)


def delete_with_children(session: Session, conversation_id: int) -> None:
    """Delete a conversation with its messages, token counts, vectors, summaries and traces."""
    get_row(session, conversation_id, lock=True)
    message_ids = select(MessageRow.id).where(MessageRow.conversation_id == conversation_id)
    # Children first, explicitly: correct even where ON DELETE CASCADE is not enforced.
    session.execute(delete(PromptTraceRow).where(PromptTraceRow.conversation_id == conversation_id))
    session.execute(delete(TokenCountRow).where(TokenCountRow.message_id.in_(message_ids)))
    session.execute(delete(EmbeddingRow).where(EmbeddingRow.conversation_id == conversation_id))
    session.execute(delete(SummaryRow).where(SummaryRow.conversation_id == conversation_id))
    session.execute(delete(MessageRow).where(MessageRow.conversation_id == conversation_id))
    session.execute(delete(ImportRow).where(ImportRow.conversation_id == conversation_id))
    session.execute(delete(ConversationRow).where(ConversationRow.id == conversation_id))


def allocate_seq(session: Session, conversation_id: int, count: int) -> int:
    """Reserve `count` sequence numbers; returns the first.

    The UPDATE ... RETURNING takes the conversation row's write lock (PostgreSQL)
    or runs inside BEGIN IMMEDIATE (SQLite), so concurrent appenders queue here
    and each sees the previous one's committed counter.
    """
    check.integer("conversation_id", conversation_id)
    last = session.execute(
        update(ConversationRow)
        .where(ConversationRow.id == conversation_id)
        .values(last_seq=ConversationRow.last_seq + count, updated_at=utcnow())
        .returning(ConversationRow.last_seq)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if last is None:
        raise not_found(conversation_id)
    return int(last) - count + 1


def record_import(
    session: Session, conversation_id: int, fingerprint: str, source: str | None
) -> None:
    """Record where an imported conversation came from (its document's fingerprint)."""
    session.add(
        ImportRow(
            conversation_id=conversation_id,
            fingerprint=fingerprint,
            source=source,
            imported_at=utcnow(),
        )
    )


def imported(session: Session, fingerprints: list[str]) -> dict[str, int]:
    """fingerprint -> the oldest stored conversation imported from such a document."""
    found: dict[str, int] = {}
    for start in range(0, len(fingerprints), 500):  # bounded IN lists
        statement = (
            select(ImportRow.fingerprint, func.min(ImportRow.conversation_id))
            .where(ImportRow.fingerprint.in_(fingerprints[start : start + 500]))
            .group_by(ImportRow.fingerprint)
        )
        found.update({row[0]: row[1] for row in session.execute(statement)})
    return found
