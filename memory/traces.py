"""Prompt-trace queries: what the model saw for each generated reply, stored with it.

`new_values` validates and touches no database, so `Store` runs it before it
opens a transaction; functions that take a `Session` run inside that transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from recursa.memory import validation as check
from recursa.memory.errors import InvalidInputError, NotFoundError
from recursa.memory.models import MessageRow, PromptTraceRow, SummaryRow
from recursa.memory.records import NewTrace, TraceRecord
from sqlalchemy import select
from sqlalchemy.orm import Session


def new_values(conversation_id: int, trace: NewTrace, created_at: datetime) -> dict[str, Any]:
    """The validated column values of a trace (all but the id of the reply it belongs to)."""
    if not isinstance(trace, NewTrace):
        raise InvalidInputError("trace must be a NewTrace.")
    return {
        "conversation_id": conversation_id,
        "user_message_id": check.optional_integer("trace.user_message_id", trace.user_message_id),
        "summary_id": check.optional_integer("trace.summary_id", trace.summary_id),
        "recalled_ids": check.ids("trace.recalled_ids", trace.recalled_ids),
        "window_ids": check.ids("trace.window_ids", trace.window_ids),
        "budget": check.integer("trace.budget", trace.budget),
        "total_tokens": check.integer("trace.total_tokens", trace.total_tokens, minimum=0),
        "model": check.text("trace.model", trace.model),
        "plan": check.json_value("trace.plan", trace.plan, dict),
        "params": check.json_value("trace.params", trace.params, dict),
        "usage": check.json_value("trace.usage", trace.usage, dict),
        "timings": check.json_value("trace.timings", trace.timings, dict),
        "notes": [
            check.text("trace.notes", note, allow_empty=True)
            for note in check.json_value("trace.notes", list(trace.notes), list)
        ],
        "created_at": created_at,
    }


def add(session: Session, message_id: int, values: Mapping[str, Any]) -> TraceRecord:
    """Store the trace of reply `message_id`.

    NotFoundError if the user message or summary it names does not exist.
    """
    user_id = values["user_message_id"]
    if user_id is not None and session.get(MessageRow, user_id) is None:
        raise NotFoundError(f"The trace's user message {user_id} does not exist.")
    summary_id = values["summary_id"]
    if summary_id is not None and session.get(SummaryRow, summary_id) is None:
        raise NotFoundError(f"The trace's summary {summary_id} does not exist.")
    row = PromptTraceRow(message_id=message_id, **values)
    session.add(row)
    session.flush()
    return TraceRecord.from_row(row)


def get(session: Session, message_id: int) -> TraceRecord:
    """The prompt trace of the reply with this message id; NotFoundError if none."""
    row = session.scalars(
        select(PromptTraceRow).where(PromptTraceRow.message_id == message_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(
            f"No prompt trace for message {message_id}: only generated replies have one."
        )
    return TraceRecord.from_row(row)


def all_of(session: Session, conversation_id: int) -> list[TraceRecord]:
    """Every prompt trace of a conversation, in reply order."""
    rows = session.scalars(
        select(PromptTraceRow)
        .where(PromptTraceRow.conversation_id == conversation_id)
        .order_by(PromptTraceRow.message_id)
    )
    return [TraceRecord.from_row(row) for row in rows]


def of_messages(session: Session, message_ids: Sequence[int]) -> list[TraceRecord]:
    """The traces of these replies (those that have one), in reply order."""
    if not message_ids:
        return []
    rows = session.scalars(
        select(PromptTraceRow)
        .where(PromptTraceRow.message_id.in_(list(message_ids)))
        .order_by(PromptTraceRow.message_id)
    )
    return [TraceRecord.from_row(row) for row in rows]
