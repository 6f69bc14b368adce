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
    owner: str | None = None,
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
        owner=check.optional_text("owner", owner),
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
    owner: str | None | Unset = UNSET,
) -> Select[Any]:
    """The validated listing statement: most recently active first (`owner`: only theirs)."""
    statement = select(ConversationRow).order_by(
        ConversationRow.updated_at.desc(), ConversationRow.id.desc()
    )
    if not include_archived:
        statement = statement.where(ConversationRow.archived.is_(False))
    if owner is not UNSET:
        statement = statement.where(owner_clause(check.optional_text("owner", owner)))
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


# --- owners, history keys and turn leases (the HTTP service's columns) ----------------------


def owner_of(session: Session, conversation_id: int) -> str | None:
    """The conversation's owner (None: no owner); NotFoundError if the id is unknown."""
    check.integer("conversation_id", conversation_id)
    found = session.execute(
        select(ConversationRow.id, ConversationRow.owner).where(
            ConversationRow.id == conversation_id
        )
    ).one_or_none()
    if found is None:
        raise not_found(conversation_id)
    return found.owner


def owner_clause(owner: str | None) -> Any:
    """The WHERE clause that selects one owner's conversations (None: those without one)."""
    return ConversationRow.owner.is_(None) if owner is None else ConversationRow.owner == owner


def claim_history(
    session: Session,
    owner: str | None,
    history_key: str,
    lease: tuple[str, datetime] | None = None,
) -> tuple[int, bool] | None:
    """Take the newest unarchived conversation of `owner` whose history key is `history_key`.

    The key is cleared in the same statement that checks it, so of two requests
    that re-send the same history at once (in one process or in two), exactly one
    continues the conversation; the other finds none and starts its own. With
    `lease` (holder, until), the turn lease is taken in the same transaction when
    it is free. Returns (conversation id, whether the lease was taken), or None.
    """
    candidates = session.scalars(
        select(ConversationRow.id)
        .where(
            owner_clause(owner),
            ConversationRow.history_key == history_key,
            ConversationRow.archived.is_(False),
        )
        .order_by(ConversationRow.updated_at.desc(), ConversationRow.id.desc())
        .limit(8)
    ).all()
    for conversation_id in candidates:
        taken = session.execute(
            update(ConversationRow)
            .where(ConversationRow.id == conversation_id)
            .where(ConversationRow.history_key == history_key)
            .values(history_key=None)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            leased = lease is not None and take_lease(session, conversation_id, *lease)
            return int(conversation_id), leased
    return None


def set_history_key(session: Session, conversation_id: int, history_key: str | None) -> None:
    """Record the fingerprint of the history a client will re-send to continue this one."""
    check.integer("conversation_id", conversation_id)
    session.execute(
        update(ConversationRow)
        .where(ConversationRow.id == conversation_id)
        .values(history_key=history_key)
        .execution_options(synchronize_session=False)
    )


def take_lease(session: Session, conversation_id: int, holder: str, until: datetime) -> bool:
    """Hold the conversation's turn lease until `until`, unless another live holder has it."""
    now = utcnow()
    taken = session.execute(
        update(ConversationRow)
        .where(ConversationRow.id == conversation_id)
        .where(
            (ConversationRow.lease_holder.is_(None))
            | (ConversationRow.lease_holder == holder)
            | (ConversationRow.lease_until < now)
        )
        .values(lease_holder=holder, lease_until=until)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return True
    require(session, conversation_id)  # NotFoundError rather than "busy" for an unknown id
    return False


def drop_lease(
    session: Session,
    conversation_id: int,
    holder: str,
    history_key: str | None | Unset = UNSET,
) -> bool:
    """Release the lease if `holder` still holds it (an expired one may have passed on).

    `history_key`, if given, is recorded in the same statement, and only if the
    lease was still this holder's: a key must not overwrite a later turn's.
    """
    values: dict[str, Any] = {"lease_holder": None, "lease_until": None}
    if history_key is not UNSET:
        values["history_key"] = history_key
    released = session.execute(
        update(ConversationRow)
        .where(ConversationRow.id == conversation_id, ConversationRow.lease_holder == holder)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(released.rowcount == 1)  # type: ignore[attr-defined]


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
