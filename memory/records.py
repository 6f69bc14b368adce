"""Typed records the store hands out and takes in: the rest of recursa never sees ORM rows.

The records of conversations, messages, summaries and search hits are frozen
pydantic models, and they are also the agent's boundary models
(`recursa.agent.ConversationInfo` is `ConversationRecord`, and so on): one
record per entity, built from its ORM row in one place, its own `from_row`
(without re-validating what the database already holds). Input types
(`NewMessage`, `NewTrace`, `UNSET`) sit beside the records they become; traces
and exports stay frozen dataclasses, which the agent turns into its own models.
A message's stored vector is a plain named tuple (`StoredEmbedding`), cheap to
build by the hundred thousand. This module imports no SQLAlchemy at run time,
so code that only handles records does not load the database layer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, cast

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from recursa.memory.models import ConversationRow, MessageRow, PromptTraceRow, SummaryRow

MessageRole = Literal["system", "user", "assistant"]
MessageStatus = Literal["complete", "interrupted", "error"]
ConversationKind = Literal["chat", "composition"]
# The message metadata flag that marks a reply replaced by a regeneration.
SUPERSEDED_KEY = "superseded"


class Unset(enum.Enum):
    """Type of `UNSET`, the "leave this field as it is" default of update methods."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET


class ConversationRecord(BaseModel):
    """A conversation's own fields plus two cheap aggregates for listings."""

    model_config = ConfigDict(frozen=True)

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

    @classmethod
    def from_row(cls, row: ConversationRow) -> ConversationRecord:
        """The record of a stored conversation."""
        return cls.model_construct(
            id=row.id,
            title=row.title,
            system_prompt=row.system_prompt,
            model=row.model,
            # The database's CHECK constraint holds the column to the literal's values.
            kind=cast(ConversationKind, row.kind),
            settings=dict(row.settings or {}),
            archived=row.archived,
            created_at=row.created_at,
            updated_at=row.updated_at,
            # Messages are never deleted one by one, so the count is the last sequence number.
            message_count=row.last_seq,
            last_seq=row.last_seq,
        )


class MessageRecord(BaseModel):
    """One stored message. `seq` is its 1-based position in its conversation."""

    model_config = ConfigDict(frozen=True)

    id: int
    conversation_id: int
    seq: int
    role: MessageRole
    content: str
    status: MessageStatus
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)
    pinned: bool = False
    rating: int | None = None

    @property
    def superseded(self) -> bool:
        """True for a reply a regeneration replaced: kept, but no longer shown or recalled.

        Read from the metadata (`SUPERSEDED_KEY`), so it is not a field of its own in JSON.
        """
        return bool(self.metadata.get(SUPERSEDED_KEY))

    @classmethod
    def from_row(cls, row: MessageRow) -> MessageRecord:
        """The record of a stored message."""
        return cls.model_construct(
            id=row.id,
            conversation_id=row.conversation_id,
            seq=row.seq,
            # CHECK constraints hold both columns to their literals' values.
            role=cast(MessageRole, row.role),
            content=row.content,
            status=cast(MessageStatus, row.status),
            created_at=row.created_at,
            metadata=dict(row.meta or {}),
            pinned=row.pinned,
            rating=row.rating,
        )


@dataclass(frozen=True)
class NewMessage:
    """A message to append (for imports: `created_at` keeps the original time)."""

    role: MessageRole
    content: str
    status: MessageStatus = "complete"
    metadata: Mapping[str, Any] | None = None
    created_at: datetime | None = None
    pinned: bool = False


@dataclass(frozen=True)
class TurnLease:
    """A claim on answering a user message: the process (host, pid, a random token) that
    answers it, until `expires_at` unless renewed."""

    host: str
    pid: int
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class NewConversation:
    """A conversation to import with its messages; `fingerprint` identifies its document."""

    title: str | None
    system_prompt: str | None
    model: str | None
    messages: Sequence[NewMessage]
    fingerprint: str | None = None
    source: str | None = None
    owner: str | None = None  # the API key digest it belongs to (the HTTP service's)


class SummaryRecord(BaseModel):
    """One link of the recursive summary chain.

    It covers messages with `seq <= covers_through_seq`; `parent_id` is the
    summary it folded in (None for the first), and `depth` is the chain length.
    """

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
    def from_row(cls, row: SummaryRow) -> SummaryRecord:
        """The record of a stored summary."""
        return cls.model_construct(
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

    @classmethod
    def from_row(cls, row: PromptTraceRow) -> TraceRecord:
        """The record of a stored prompt trace."""
        return cls(
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


@dataclass(frozen=True, kw_only=True)
class NewTrace:
    """The prompt trace of a reply, before it is stored (see `TraceRecord`)."""

    model: str
    budget: int
    total_tokens: int
    user_message_id: int | None = None
    summary_id: int | None = None
    recalled_ids: Sequence[int] = ()
    window_ids: Sequence[int] = ()
    plan: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    usage: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, Any] = field(default_factory=dict)
    notes: Sequence[str] = ()


class SearchHit(BaseModel):
    """One full-text search result; `rank` is higher for better matches."""

    model_config = ConfigDict(frozen=True)

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


class StoredEmbedding(NamedTuple):
    """One message's stored vector: `dim` float32 values, little-endian, as bytes."""

    message_id: int
    seq: int
    vector: bytes
