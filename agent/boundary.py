"""The Agent's typed boundary: conversations, messages, summaries, hits, traces and replies.

Frozen pydantic models, so callers never see ORM rows or mutable state.
Conversations, messages, summaries and search hits are the store's own records
(`recursa.memory.records`); a prompt trace is built here from its stored record
(`PromptTrace.from_record`), because its plan is the agent's `PromptPlan`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from recursa.agent.planning.plan import PromptPlan
from recursa.agent.runtime.protocol import ChatMessage, Usage
from recursa.memory.records import (
    SUPERSEDED_KEY,
    ConversationRecord,
    MessageRecord,
    SearchHit,
    SummaryRecord,
    TraceRecord,
)

__all__ = [
    "SUPERSEDED_KEY",
    "CompactionReport",
    "CompactionWhen",
    "ConversationInfo",
    "ImportResult",
    "MessageInfo",
    "PromptTrace",
    "Reply",
    "ReplyStatus",
    "SearchResult",
    "StreamChunk",
    "SummaryInfo",
]

ReplyStatus = Literal["complete", "interrupted", "error"]
CompactionWhen = Literal["before_reply", "after_reply", "explicit"]


# One record per entity: the store's records are the boundary models. The agent's
# names say what a caller gets; the classes are memory's, built from their rows there.
ConversationInfo = ConversationRecord
MessageInfo = MessageRecord
SummaryInfo = SummaryRecord
SearchResult = SearchHit


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


class ImportResult(BaseModel):
    """What an import did: the new conversations, and the documents it skipped as re-imports.

    `skipped` maps a document's position in the batch to the stored conversation
    already imported from the same content (see `Agent.import_conversations`).
    """

    model_config = ConfigDict(frozen=True)

    imported_ids: list[int] = Field(default_factory=list)
    skipped: dict[int, int] = Field(default_factory=dict)


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
