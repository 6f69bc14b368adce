"""The PromptPlan and the pure planner that builds it under an exact token budget.

`build_plan` is a function of the conversation's memory (system prompt, latest
summary, window, pinned and recalled messages), the new message, the budget and
the settings, with the token counter and the templates injected. It touches no
database and no model, so its invariants are property-tested:

* ``counter.count_tokens(plan.messages) == plan.total_tokens <= plan.budget``;
* the system prompt and the new message are always present;
* no message appears in two sections; the window's unpinned part is a
  contiguous suffix of the candidate window.

Rendered order: system (with the summary folded into the system message),
window, recall, new. The summary only changes at compaction and the window only
grows between compactions, so consecutive prompts share their prefix and a
runtime can reuse its KV cache; recalled excerpts change with every message, so
they sit right before the new message where they invalidate nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from recursa.agent.errors import BudgetError, ConfigError
from recursa.agent.runtime.protocol import ChatMessage
from recursa.agent.settings import BudgetSettings, Policy, RecallSettings
from recursa.agent.templates import Templates
from recursa.memory.records import MessageRecord, SummaryRecord
from typing_extensions import TypedDict

SectionKind = Literal["system", "summary", "recall", "window", "new"]
SECTION_KINDS: tuple[SectionKind, ...] = ("system", "summary", "recall", "window", "new")

# A fixed system message: a message's cached cost is what it adds after this one.
REFERENCE_SYSTEM: ChatMessage = {"role": "system", "content": "."}


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
        s = self.section("recall")
        return list(s.message_ids) if s else []

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


def compute_budget(
    context_window: int, settings: BudgetSettings, *, max_prompt_tokens: int | None = None
) -> int:
    """budget = min(context_window - reply_reserve - safety_margin, max_prompt_tokens)."""
    cap = max_prompt_tokens if max_prompt_tokens is not None else settings.max_prompt_tokens
    budget = context_window - settings.reply_reserve - settings.safety_margin
    if cap is not None:
        budget = min(budget, cap)
    if budget < 16:
        raise ConfigError(
            f"The prompt budget is {budget} tokens (context window {context_window}, "
            f"reply_reserve {settings.reply_reserve}, safety_margin {settings.safety_margin}); "
            "lower budget.reply_reserve or use a model with a larger context window."
        )
    return budget


def message_cost(counter: PromptCounter, role: str, content: str) -> int:
    """Tokens a message adds to a prompt after a system message (what the store caches)."""
    msg: ChatMessage = {"role": role, "content": content}  # type: ignore[typeddict-item]
    return counter.count_tokens([REFERENCE_SYSTEM, msg]) - counter.count_tokens([REFERENCE_SYSTEM])


def excerpt(counter: PromptCounter, text: str, max_tokens: int) -> str:
    """`text` cut at a word boundary to at most `max_tokens` tokens, marked with '…'."""
    if counter.count_text(text) <= max_tokens:
        return text
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:  # the longest word prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if counter.count_text(" ".join(words[:mid]) + " …") <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]) + " …"


def format_date(value: datetime | None) -> str:
    if value is None:
        return "undated"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M")


def flexible_budget(budget: int, system_tokens: int) -> int:
    """The part of the budget shared by summary, recall, window and the new message."""
    return max(0, budget - system_tokens)


def summary_cap(flexible: int, settings: BudgetSettings) -> int:
    """The most tokens a new summary may take: its share of the flexible budget (at least 16)."""
    return max(16, int(settings.summary_share * flexible))


def build_plan(
    *,
    counter: PromptCounter,
    templates: Templates,
    system_prompt: str,
    new: NewText,
    budget: int,
    budget_settings: BudgetSettings,
    policy: Policy = "summary+recall",
    summary: SummaryRecord | None = None,
    window: Sequence[MessageRecord] = (),
    pinned: Sequence[MessageRecord] = (),
    recall: Sequence[MessageRecord] = (),
    recall_settings: RecallSettings | None = None,
    cost_of: Callable[[MessageRecord], int] | None = None,
    conversation_id: int | None = None,
    model: str = "",
    context_window: int = 0,
) -> PromptPlan:
    """Build the prompt for `new` within `budget` tokens.

    `window` holds the candidate verbatim messages (after the summary's coverage,
    oldest first, without the new message); `pinned` archived pinned messages;
    `recall` archived messages ranked best first. `cost_of` returns a message's
    cached cost (see `message_cost`); it defaults to counting it now.
    Raises BudgetError when the system prompt and the new message alone exceed
    the budget.
    """
    recall_settings = recall_settings or RecallSettings()
    cost = cost_of or (lambda r: message_cost(counter, r.role, r.content))
    notes: list[str] = []
    use_summary = policy != "window" and summary is not None
    use_recall = policy == "summary+recall"
    if policy == "window":
        # A plain sliding window: nothing is hidden behind a summary.
        pinned = ()
        recall = ()
    new_id = new.record.id if new.record is not None else None
    window = [m for m in window if m.id != new_id]
    window_set = {m.id for m in window}
    pinned = [m for m in pinned if m.id not in window_set and m.id != new_id]

    sys_plain: ChatMessage = {
        "role": "system",
        "content": templates.render("system", system_prompt=system_prompt, summary=None),
    }
    system_tokens = counter.count_tokens([sys_plain])
    new_msg: ChatMessage = {"role": "user", "content": new.content}
    new_tokens = counter.count_tokens([sys_plain, new_msg]) - system_tokens
    if system_tokens + new_tokens > budget:
        raise BudgetError(
            f"The message is {new_tokens} tokens, but the prompt budget is {budget} tokens "
            f"and the system prompt uses {system_tokens} of them; shorten the message by at "
            f"least {system_tokens + new_tokens - budget} tokens (or raise max_prompt_tokens)."
        )
    flex = flexible_budget(budget, system_tokens)
    room = flex - new_tokens

    summary_tokens = 0
    sys_msg = sys_plain
    if use_summary:
        assert summary is not None
        sys_full: ChatMessage = {
            "role": "system",
            "content": templates.render(
                "system", system_prompt=system_prompt, summary=summary.content
            ),
        }
        summary_tokens = counter.count_tokens([sys_full]) - system_tokens
        if summary_tokens > room:
            notes.append(
                f"summary {summary.id} ({summary_tokens} tokens) left out: it does not fit "
                f"beside the new message"
            )
            use_summary = False
            summary_tokens = 0
        else:
            sys_msg = sys_full
    avail = room - summary_tokens

    # Recall candidates with their line costs, best first.
    excluded = {m.id for m in window} | {m.id for m in pinned}
    if new.record is not None:
        excluded.add(new.record.id)
    candidates: list[tuple[MessageRecord, str, int]] = []
    header_tokens = 0
    if use_recall and recall and recall_settings.max_hits > 0:
        header_tokens = counter.count_tokens(
            [sys_msg, {"role": "system", "content": templates.render("recall", excerpts=[])}]
        ) - counter.count_tokens([sys_msg])
        seen: set[int] = set()
        for rec in recall:
            if rec.id in excluded or rec.id in seen:
                continue
            seen.add(rec.id)
            text = excerpt(counter, rec.content, recall_settings.max_excerpt_tokens)
            line = templates.render(
                "recall_line", date=format_date(rec.created_at), role=rec.role, text=text
            )
            candidates.append((rec, text, counter.count_text(line) + 1))
    recall_need = header_tokens + sum(c for _, _, c in candidates[: recall_settings.max_hits])
    recall_reserved = (
        min(int(budget_settings.recall_share * flex), recall_need) if candidates else 0
    )

    # Window: pinned archived messages first, then the longest suffix that fits.
    window_cap = avail - recall_reserved
    kept_pinned: list[tuple[MessageRecord, int]] = []
    used = 0
    for rec in sorted(pinned, key=lambda r: r.seq):
        c = cost(rec)
        if used + c <= window_cap:
            kept_pinned.append((rec, c))
            used += c
        else:
            notes.append(f"pinned message {rec.id} left out: it does not fit the budget")
    suffix: list[tuple[MessageRecord, int]] = []
    ordered = sorted(window, key=lambda r: r.seq)
    cut = len(ordered)
    for index in range(len(ordered) - 1, -1, -1):
        c = cost(ordered[index])
        if used + c > window_cap:
            break
        suffix.append((ordered[index], c))
        used += c
        cut = index
    suffix.reverse()
    dropped = [r.id for r in ordered[:cut]]

    # Recall fills what the window left, up to its hit limit.
    recall_cap = avail - used
    chosen: list[tuple[MessageRecord, str, int]] = []
    spent = header_tokens
    for rec, text, c in candidates:
        if len(chosen) >= recall_settings.max_hits:
            break
        if spent + c <= recall_cap:
            chosen.append((rec, text, c))
            spent += c

    def render() -> list[ChatMessage]:
        out: list[ChatMessage] = [sys_msg]
        out.extend(
            {"role": r.role, "content": r.content}  # type: ignore[typeddict-item,misc]
            for r, _ in [*kept_pinned, *suffix]
        )
        if chosen:
            out.append({"role": "system", "content": recall_block()})
        out.append(new_msg)
        return out

    def recall_block() -> str:
        items = sorted(chosen, key=lambda t: t[0].seq)
        excerpts = [
            {"date": format_date(r.created_at), "role": r.role, "text": text}
            for r, text, _ in items
        ]
        return templates.render("recall", excerpts=excerpts)

    messages = render()
    total = counter.count_tokens(messages)
    # Cached per-message costs are additive estimates; the exact count decides.
    while total > budget:
        if suffix:
            dropped.append(suffix.pop(0)[0].id)
        elif chosen:
            chosen.pop()
        elif kept_pinned:
            rec, _ = kept_pinned.pop(0)
            notes.append(f"pinned message {rec.id} left out: it does not fit the budget")
        elif sys_msg is not sys_plain:
            notes.append("summary left out: it does not fit the budget")
            sys_msg = sys_plain
            use_summary = False
        else:  # only system + new remain and they were checked above
            raise BudgetError(
                f"The prompt is {total} tokens even with only the system prompt and the new "
                f"message; the budget is {budget}. Shorten the message or the system prompt."
            )
        messages = render()
        total = counter.count_tokens(messages)

    # Exact marginal section counts over the rendered prefix.
    n_window = len(kept_pinned) + len(suffix)
    c_sys = counter.count_tokens(messages[:1]) if use_summary else system_tokens
    c_window = counter.count_tokens(messages[: 1 + n_window]) if n_window else c_sys
    c_recall = counter.count_tokens(messages[: 2 + n_window]) if chosen else c_window
    summary_section_tokens = c_sys - system_tokens

    window_records = [PlanMessage.from_record(r, c) for r, c in [*kept_pinned, *suffix]]
    sections: list[PlanSection] = [
        PlanSection(kind="system", tokens=system_tokens, text=system_prompt)
    ]
    if use_summary:
        assert summary is not None
        sections.append(
            PlanSection(
                kind="summary",
                tokens=summary_section_tokens,
                summary_id=summary.id,
                text=summary.content,
            )
        )
    if window_records:
        sections.append(
            PlanSection(
                kind="window",
                tokens=c_window - c_sys,
                message_ids=[m.id for m in window_records if m.id is not None],
                messages=window_records,
            )
        )
    if chosen:
        items = sorted(chosen, key=lambda t: t[0].seq)
        sections.append(
            PlanSection(
                kind="recall",
                tokens=c_recall - c_window,
                message_ids=[r.id for r, _, _ in items],
                messages=[PlanMessage.from_record(r, c) for r, _, c in items],
                text=recall_block(),
            )
        )
    new_record = (
        PlanMessage.from_record(new.record, new_tokens)
        if new.record is not None
        else PlanMessage(id=None, seq=None, role="user", content=new.content, tokens=new_tokens)
    )
    sections.append(
        PlanSection(
            kind="new",
            tokens=total - c_recall,
            message_ids=[new.record.id] if new.record is not None else [],
            messages=[new_record],
        )
    )
    return PromptPlan(
        conversation_id=conversation_id,
        model=model,
        tokenizer_id=counter.tokenizer_id,
        policy=policy,
        template_version=templates.version,
        context_window=context_window,
        budget=budget,
        total_tokens=total,
        sections=sections,
        messages=messages,
        system_prompt=system_prompt,
        summary_id=summary.id if use_summary and summary is not None else None,
        covers_through_seq=(
            summary.covers_through_seq if summary is not None and policy != "window" else 0
        ),
        dropped_ids=sorted(dropped),
        notes=notes,
        recall_excerpt_tokens=recall_settings.max_excerpt_tokens,
    )


def plan_from_json(data: Mapping[str, Any]) -> PromptPlan:
    """A PromptPlan back from the JSON stored in a trace."""
    return PromptPlan.model_validate(data)
