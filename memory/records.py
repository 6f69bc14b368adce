"""Typed records the store hands out: the rest of recursa never sees ORM rows.

They are frozen dataclasses: cheap to build, safe to pass between threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

MessageRole = Literal["system", "user", "assistant"]
MessageStatus = Literal["complete", "interrupted", "error"]
ConversationKind = Literal["chat", "composition"]


@dataclass(frozen=True)
class ConversationRecord:
    """A conversation's own fields plus two cheap aggregates for listings."""

    id: int
    title: str | None
    system_prompt: str | None
    model: str | None
    kind: ConversationKind
    settings: dict[str, Any]
    archived: bool
    created_at: datetime
    updated_at: datetime
    message_count: int
    last_seq: int


@dataclass(frozen=True)
class MessageRecord:
    """One stored message. `seq` is its 1-based position in its conversation."""

    id: int
    conversation_id: int
    seq: int
    role: MessageRole
    content: str
    status: MessageStatus
    created_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    pinned: bool = False
    rating: int | None = None


@dataclass(frozen=True)
class SummaryRecord:
    """One link of the recursive summary chain.

    It covers messages with `seq <= covers_through_seq`; `parent_id` is the
    summary it folded in (None for the first), and `depth` is the chain length.
    """

    id: int
    conversation_id: int
    covers_from_seq: int
    covers_through_seq: int
    parent_id: int | None
    depth: int
    content: str
    token_count: int
    tokenizer_id: str | None
    model: str | None
    prompt_version: str | None
    created_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TraceRecord:
    """What the model saw for one generated reply, stored with that reply.

    `plan` is the PromptPlan as JSON (sections, ids, token counts, budget);
    `params` the generation parameters; `timings` and `usage` the figures.
    """

    id: int
    conversation_id: int
    message_id: int
    user_message_id: int | None
    summary_id: int | None
    recalled_ids: list[int]
    window_ids: list[int]
    budget: int
    total_tokens: int
    model: str
    plan: dict[str, Any]
    params: dict[str, Any]
    usage: dict[str, Any]
    timings: dict[str, Any]
    notes: list[str]
    created_at: datetime


@dataclass(frozen=True)
class SearchHit:
    """One full-text search result; `rank` is higher for better matches."""

    kind: Literal["message", "summary"]
    id: int
    conversation_id: int
    seq: int
    role: str
    snippet: str
    rank: float
    created_at: datetime


@dataclass(frozen=True)
class ConversationExport:
    """A whole conversation as plain records."""

    conversation: ConversationRecord
    messages: list[MessageRecord]
    summaries: list[SummaryRecord]
    traces: list[TraceRecord]
