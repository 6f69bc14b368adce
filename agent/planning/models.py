"""The prompt plan's data: what the model sees for one turn, section by section.

A `PromptPlan` is stored as JSON with every reply's trace, so these models are
also how a past prompt is read back (`plan_from_json`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from recursa.agent.runtime.protocol import ChatMessage
from recursa.agent.settings import Policy
from recursa.memory.records import MessageRecord
from typing_extensions import TypedDict

__all__ = [
    "SECTION_KINDS",
    "NewText",
    "PlanMessage",
    "PlanSection",
    "PromptCounter",
    "PromptPlan",
    "RecallSource",
    "RenderedMessage",
    "SectionKind",
    "plan_from_json",
]

SectionKind = Literal["system", "summary", "recall", "window", "new"]
SECTION_KINDS: tuple[SectionKind, ...] = ("system", "summary", "recall", "window", "new")
# Which ranking found a recalled message: full-text, semantic, the date the question
# names, or several ("both"); "pair" came with a hit (its question or answer).
RecallSource = Literal["full-text", "semantic", "date", "both", "pair"]


class RenderedMessage(TypedDict):
    """A chat message as rendered into a plan (same shape as the runtime's ChatMessage)."""

    role: Literal["system", "user", "assistant"]
    content: str


class PromptCounter(Protocol):
    """What the planner needs from a runtime: exact counts with its chat template."""

    @property
    def tokenizer_id(self) -> str: ...

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int: ...

    def count_text(self, text: str) -> int: ...


class PlanMessage(BaseModel):
    """A stored (or about to be stored) message as it appears in a plan."""

    model_config = ConfigDict(frozen=True)

    id: int | None = Field(description="Message id; None for a previewed new message.")
    seq: int | None = Field(description="Position in the conversation (1-based).")
    role: str
    content: str
    created_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    pinned: bool = False
    tokens: int = Field(
        default=0, description="What the message adds to the prompt (cached count)."
    )
    excerpt: str | None = Field(
        default=None, description="A recalled message: the part of it the prompt shows."
    )
    source: RecallSource | None = Field(
        default=None,
        description="A recalled message: which ranking found it (or 'pair': it came with a hit).",
    )
    score: float | None = Field(
        default=None, description="A recalled message: its fused rank score (higher is better)."
    )

    @classmethod
    def from_record(cls, record: MessageRecord, tokens: int) -> PlanMessage:
        return cls(
            id=record.id,
            seq=record.seq,
            role=record.role,
            content=record.content,
            created_at=record.created_at,
            metadata=dict(record.metadata),
            pinned=record.pinned,
            tokens=tokens,
        )


class PlanSection(BaseModel):
    """One section of the prompt, with its exact share of the total token count.

    Tokens are marginal: what rendering this section adds to the sections before
    it, counted with the runtime's chat template, so the sections sum exactly to
    the plan's `total_tokens` (the system section carries the template's fixed
    overhead, such as the generation prompt).
    """

    model_config = ConfigDict(frozen=True)

    kind: SectionKind
    tokens: int
    message_ids: list[int] = Field(default_factory=list)
    summary_id: int | None = None
    messages: list[PlanMessage] = Field(default_factory=list)
    text: str | None = Field(
        default=None, description="The system prompt, the summary text or the recall block."
    )
    before_message_id: int | None = Field(
        default=None,
        description=(
            "A recall block kept from an earlier turn: the window message it precedes "
            "(None: this turn's block, before the new message)."
        ),
    )
    terms: list[str] | None = Field(
        default=None, description="A recall block: the query words its excerpts were cut for."
    )


class PromptPlan(BaseModel):
    """What the model will see for one turn, section by section, within the budget."""

    model_config = ConfigDict(frozen=True)

    conversation_id: int | None = None
    model: str = ""
    tokenizer_id: str = ""
    policy: Policy = "summary+recall"
    template_version: str = "v1"
    context_window: int = 0
    budget: int
    total_tokens: int
    sections: list[PlanSection]
    messages: list[RenderedMessage] = Field(description="The rendered prompt, exactly as sent.")
    system_prompt: str = ""
    summary_id: int | None = None
    covers_through_seq: int = Field(
        default=0, description="Messages up to this seq are summarized."
    )
    dropped_ids: list[int] = Field(
        default_factory=list,
        description="Window messages after the summary that did not fit: compaction is due.",
    )
    notes: list[str] = Field(default_factory=list)
    recall_excerpt_tokens: int | None = Field(
        default=None, description="Longest recalled excerpt (to re-render the recall block)."
    )

    @property
    def free_tokens(self) -> int:
        return self.budget - self.total_tokens

    def section(self, kind: SectionKind) -> PlanSection | None:
        """The section of this kind, or None when the plan has none."""
        return next((s for s in self.sections if s.kind == kind), None)

    def tokens_by_kind(self) -> dict[str, int]:
        """Token count per section kind (0 for absent sections), for budget bars."""
        out: dict[str, int] = dict.fromkeys(SECTION_KINDS, 0)
        for s in self.sections:
            out[s.kind] += s.tokens
        return out

    @property
    def recalled_ids(self) -> list[int]:
        """Every recalled message in the prompt: earlier turns' kept blocks, then this turn's."""
        ids: list[int] = []
        for s in self.sections:
            if s.kind == "recall":
                ids.extend(i for i in s.message_ids if i not in ids)
        return ids

    @property
    def recall_sections(self) -> list[PlanSection]:
        """The recall blocks, in prompt order (this turn's, if any, is the last)."""
        return [s for s in self.sections if s.kind == "recall"]

    @property
    def window_ids(self) -> list[int]:
        s = self.section("window")
        return list(s.message_ids) if s else []

    @property
    def new_message_id(self) -> int | None:
        s = self.section("new")
        return s.message_ids[0] if s and s.message_ids else None


@dataclass(frozen=True)
class NewText:
    """The new user message: its text, and its record once it is stored."""

    content: str
    record: MessageRecord | None = None


def plan_from_json(data: Mapping[str, Any]) -> PromptPlan:
    """A PromptPlan back from the JSON stored in a trace."""
    return PromptPlan.model_validate(data)
