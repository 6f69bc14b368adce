"""ORM rows to the frozen records the rest of recursa sees."""

from __future__ import annotations

from recursa.memory.models import Conversation, Message, PromptTrace, Summary
from recursa.memory.records import ConversationRecord, MessageRecord, SummaryRecord, TraceRecord


def conversation_record(row: Conversation) -> ConversationRecord:
    return ConversationRecord(
        id=row.id,
        title=row.title,
        system_prompt=row.system_prompt,
        model=row.model,
        kind=row.kind,  # type: ignore[arg-type]
        settings=dict(row.settings or {}),
        archived=row.archived,
        created_at=row.created_at,
        updated_at=row.updated_at,
        # Messages are never deleted one by one, so the count is the last sequence number.
        message_count=row.last_seq,
        last_seq=row.last_seq,
    )


def message_record(row: Message) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        seq=row.seq,
        role=row.role,  # type: ignore[arg-type]
        content=row.content,
        status=row.status,  # type: ignore[arg-type]
        created_at=row.created_at,
        metadata=dict(row.meta or {}),
        pinned=row.pinned,
        rating=row.rating,
    )


def summary_record(row: Summary) -> SummaryRecord:
    return SummaryRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        covers_from_seq=row.covers_from_seq,
        covers_through_seq=row.covers_through_seq,
        parent_id=row.parent_id,
        depth=row.depth,
        content=row.content,
        token_count=row.token_count,
        tokenizer_id=row.tokenizer_id,
        model=row.model,
        prompt_version=row.prompt_version,
        created_at=row.created_at,
        metadata=dict(row.meta or {}),
    )


def trace_record(row: PromptTrace) -> TraceRecord:
    return TraceRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        message_id=row.message_id,
        user_message_id=row.user_message_id,
        summary_id=row.summary_id,
        recalled_ids=list(row.recalled_ids),
        window_ids=list(row.window_ids),
        budget=row.budget,
        total_tokens=row.total_tokens,
        model=row.model,
        plan=dict(row.plan),
        params=dict(row.params),
        usage=dict(row.usage),
        timings=dict(row.timings),
        notes=list(row.notes),
        created_at=row.created_at,
    )
