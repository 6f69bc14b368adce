"""The Agent's typed boundary: conversations, messages, summaries, hits, traces and replies.

Frozen pydantic models built from the store's records (`from_record`), so
callers never see ORM rows or mutable state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from recursa.agent.planning.plan import PromptPlan
from recursa.agent.runtime.protocol import ChatMessage, Usage
from recursa.memory.records import (
    ConversationRecord,
    MessageRecord,
    SearchHit,
    SummaryRecord,
    TraceRecord,
)

__all__ = [
    "CompactionReport",
    "CompactionWhen",
    "ConversationInfo",
    "MessageInfo",
    "PromptTrace",
    "Reply",
    "ReplyStatus",
    "SearchResult",
    "StreamChunk",
    "SummaryInfo",
]

# The message metadata flag that marks a reply replaced by a regeneration.
SUPERSEDED_KEY = "superseded"

ReplyStatus = Literal["complete", "interrupted", "error"]
CompactionWhen = Literal["before_reply", "after_reply", "explicit"]


class ConversationInfo(BaseModel):
    """A conversation as listings and headers show it."""

    model_config = ConfigDict(frozen=True)

    id: int
    title: str | None
    system_prompt: str | None
    model: str | None
    kind: str = "chat"
    settings: dict[str, Any] = Field(default_factory=dict)
    archived: bool = False
    created_at: datetime
    updated_at: datetime
    message_count: int = 0
    last_seq: int = 0

    @classmethod
    def from_record(cls, r: ConversationRecord) -> ConversationInfo:
        return cls(
            id=r.id,
            title=r.title,
            system_prompt=r.system_prompt,
            model=r.model,
            kind=r.kind,
            settings=dict(r.settings),
            archived=r.archived,
            created_at=r.created_at,
            updated_at=r.updated_at,
            message_count=r.message_count,
            last_seq=r.last_seq,
        )


class MessageInfo(BaseModel):
    """One stored message: id, sequence number, role, content, timestamps, metadata.

    `superseded` says whether a regeneration replaced this reply.
    """

    model_config = ConfigDict(frozen=True)

    id: int
    conversation_id: int
    seq: int
    role: str
    content: str
    status: str = "complete"
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)
    pinned: bool = False
    rating: int | None = None

    @property
    def superseded(self) -> bool:
        """True for a reply that a regeneration replaced: it is kept, but no longer recalled.

        Read from the metadata, so it is not a field of its own in JSON output.
        """
        return bool(self.metadata.get(SUPERSEDED_KEY))

    @classmethod
    def from_record(cls, r: MessageRecord) -> MessageInfo:
        return cls(
            id=r.id,
            conversation_id=r.conversation_id,
            seq=r.seq,
            role=r.role,
            content=r.content,
            status=r.status,
            created_at=r.created_at,
            metadata=dict(r.metadata),
            pinned=r.pinned,
            rating=r.rating,
        )


class SummaryInfo(BaseModel):
    """One link of the summary chain, with the range of messages it covers."""

    model_config = ConfigDict(frozen=True)

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
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_record(cls, r: SummaryRecord) -> SummaryInfo:
        return cls(
            id=r.id,
            conversation_id=r.conversation_id,
            covers_from_seq=r.covers_from_seq,
            covers_through_seq=r.covers_through_seq,
            parent_id=r.parent_id,
            depth=r.depth,
            content=r.content,
            token_count=r.token_count,
            tokenizer_id=r.tokenizer_id,
            model=r.model,
            prompt_version=r.prompt_version,
            created_at=r.created_at,
            metadata=dict(r.metadata),
        )


class SearchResult(BaseModel):
    """One full-text search hit (a message or a summary)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["message", "summary"]
    id: int
    conversation_id: int
    seq: int
    role: str
    snippet: str
    rank: float
    created_at: datetime

    @classmethod
    def from_hit(cls, h: SearchHit) -> SearchResult:
        return cls(
            kind=h.kind,
            id=h.id,
            conversation_id=h.conversation_id,
            seq=h.seq,
            role=h.role,
            snippet=h.snippet,
            rank=h.rank,
            created_at=h.created_at,
        )


class CompactionReport(BaseModel):
    """What one compaction did (or why it did not)."""

    model_config = ConfigDict(frozen=True)

    status: Literal["compacted", "not_needed", "conflict", "failed"]
    when: CompactionWhen = "after_reply"
    summary_id: int | None = None
    parent_id: int | None = None
    covers_from_seq: int | None = None
    covers_through_seq: int | None = None
    evicted_ids: list[int] = Field(default_factory=list)
    window_tokens_before: int = 0
    window_tokens_after: int = 0
    summary_tokens: int = 0
    summarizer_calls: int = 0
    duration_s: float = 0.0
    error: str | None = None
    notes: list[str] = Field(default_factory=list)


class PromptTrace(BaseModel):
    """What the model saw for one reply: the plan (with the rendered prompt) and the figures."""

    model_config = ConfigDict(frozen=True)

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
    plan: PromptPlan
    params: dict[str, Any] = Field(default_factory=dict)
    usage: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, Any] = Field(default_factory=dict)
    compactions: list[CompactionReport] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    created_at: datetime

    @property
    def messages(self) -> list[ChatMessage]:
        """The exact prompt that was sent."""
        return list(self.plan.messages)

    @classmethod
    def from_record(cls, r: TraceRecord) -> PromptTrace:
        timings = dict(r.timings)
        compactions = [CompactionReport.model_validate(c) for c in timings.pop("compactions", [])]
        return cls(
            id=r.id,
            conversation_id=r.conversation_id,
            message_id=r.message_id,
            user_message_id=r.user_message_id,
            summary_id=r.summary_id,
            recalled_ids=list(r.recalled_ids),
            window_ids=list(r.window_ids),
            budget=r.budget,
            total_tokens=r.total_tokens,
            model=r.model,
            plan=PromptPlan.model_validate(r.plan),
            params=dict(r.params),
            usage=dict(r.usage),
            timings=timings,
            compactions=compactions,
            notes=list(r.notes),
            created_at=r.created_at,
        )


class Reply(BaseModel):
    """The outcome of one turn: the stored reply, its status and its trace."""

    model_config = ConfigDict(frozen=True)

    conversation_id: int
    message_id: int
    user_message_id: int
    text: str
    status: ReplyStatus = "complete"
    error: str | None = None
    trace: PromptTrace | None = None
    usage: Usage | None = None

    @property
    def plan(self) -> PromptPlan | None:
        return self.trace.plan if self.trace else None


class StreamChunk(BaseModel):
    """One item of a reply stream: a piece of text, a status event, or the final Reply.

    `event` is "text" for generated text, "compacting" when the turn starts
    folding old turns into the summary (a UI may say so), and "done" for the
    last item, whose `reply` holds the stored Reply.
    """

    model_config = ConfigDict(frozen=True)

    event: Literal["text", "compacting", "done"] = "text"
    text: str = ""
    reply: Reply | None = None

    @property
    def done(self) -> bool:
        return self.reply is not None
