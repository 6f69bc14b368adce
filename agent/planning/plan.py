"""The pure planner: the prompt for one turn under an exact token budget.

`build_plan` is a function of the conversation's memory (system prompt, latest
summary, window, pinned and recalled messages), the new message, the budget and
the settings, with the token counter and the templates injected. It touches no
database and no model, so its invariants are property-tested:

* ``counter.count_tokens(plan.messages) == plan.total_tokens <= plan.budget``;
* the system prompt and the new message are always present;
* no message appears in two sections; the window's unpinned part is a
  contiguous suffix of the candidate window.

Rendered order: system (with the summary folded into the system message), the
window, this turn's recall block, the new message. The summary only changes at
compaction and the window only grows between compactions, so consecutive
prompts share their prefix and a runtime can reuse its KV cache. A recall block
is rendered right before the user message it was recalled for, and it stays
there, in place, in the following turns' prompts until the next compaction
(`kept_notes`): each turn then only appends its reply, its new block and its
message, instead of re-encoding a recall block that changed.
The plan's data types live in `recursa.agent.planning.models`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from recursa.agent.errors import BudgetError, ConfigError
from recursa.agent.planning.models import (
    SECTION_KINDS,
    NewText,
    PlanMessage,
    PlanSection,
    PromptCounter,
    PromptPlan,
    RecallSource,
    RenderedMessage,
    SectionKind,
    plan_from_json,
)
from recursa.agent.runtime.protocol import ChatMessage
from recursa.agent.settings import BudgetSettings, Policy, RecallSettings
from recursa.agent.templates import Templates
from recursa.memory.records import MessageRecord, SummaryRecord

__all__ = [
    "REFERENCE_SYSTEM",
    "SECTION_KINDS",
    "KeptNote",
    "NewText",
    "PlanMessage",
    "PlanSection",
    "PromptCounter",
    "PromptPlan",
    "RecallHit",
    "RenderedMessage",
    "SectionKind",
    "build_plan",
    "compute_budget",
    "excerpt",
    "flexible_budget",
    "format_date",
    "message_cost",
    "plan_from_json",
    "summary_cap",
]

# A turn's recall block takes at most this fraction of the recall share: earlier
# turns' blocks stay in place beside it until the share is full.
BLOCKS_PER_SHARE = 2
# A fixed system message: a message's cached cost is what it adds after this one.
REFERENCE_SYSTEM: ChatMessage = {"role": "system", "content": "."}


@dataclass(frozen=True)
class RecallHit:
    """A recall candidate: the message, the ranking that found it, its score, its excerpt.

    `text` is the excerpt to show (None: the whole message, cut to the excerpt limit).
    A partner (`partner_of` set) is shown only with its hit and only if room is left
    once the hits are placed; it does not count toward the hit limit.
    """

    record: MessageRecord
    source: RecallSource = "full-text"
    score: float = 0.0
    text: str | None = None
    partner_of: int | None = None  # a "pair": the hit (message id) it belongs to


@dataclass(frozen=True)
class KeptNote:
    """A recall block shown at an earlier turn, kept before that turn's user message."""

    before_message_id: int
    section: PlanSection


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


def too_large(
    system_tokens: int,
    new_tokens: int,
    budget: int,
    settings: BudgetSettings,
    context_window: int,
) -> str:
    """Why the system prompt and the new message cannot fit, blaming the larger one.

    Raising max_prompt_tokens is suggested only when that cap is what limits
    the budget; when the context window is the limit, the message says so.
    """
    over = system_tokens + new_tokens - budget
    window_budget = (
        context_window - settings.reply_reserve - settings.safety_margin if context_window else None
    )
    cap = settings.max_prompt_tokens
    if cap is not None and (window_budget is None or cap < window_budget):
        hint = " (or raise max_prompt_tokens)"
    elif context_window:
        hint = f"; the model's context window ({context_window} tokens) is the limit"
    else:
        hint = ""
    if system_tokens > new_tokens:
        return (
            f"The system prompt is {system_tokens} tokens and the message {new_tokens}: "
            f"together {over} tokens over the prompt budget of {budget}. Shorten the system "
            f"prompt{hint}."
        )
    return (
        f"The message is {new_tokens} tokens, but the prompt budget is {budget} tokens and "
        f"the system prompt uses {system_tokens} of them; shorten the message by at least "
        f"{over} tokens{hint}."
    )


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
    recall: Sequence[MessageRecord | RecallHit] = (),
    recall_settings: RecallSettings | None = None,
    recall_terms: Sequence[str] | None = None,
    kept_notes: Sequence[KeptNote] = (),
    cost_of: Callable[[MessageRecord], int] | None = None,
    conversation_id: int | None = None,
    model: str = "",
    context_window: int = 0,
) -> PromptPlan:
    """Build the prompt for `new` within `budget` tokens.

    `window` holds the candidate verbatim messages (after the summary's coverage,
    oldest first, without the new message); `pinned` older pinned messages;
    `recall` the recall candidates best first (records, or hits with their
    source, score and excerpt); `kept_notes` the recall blocks of earlier turns
    to keep before their user messages when those stay in the window.
    `recall_terms` are the query words the excerpts were cut for (recorded in
    the plan). `cost_of` returns a message's cached cost (see `message_cost`);
    it defaults to counting it now. Raises BudgetError when the system prompt
    and the new message alone exceed the budget.
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
    if not use_recall:
        kept_notes = ()
    new_id = new.record.id if new.record is not None else None
    window = [m for m in window if m.id != new_id]
    window_set = {m.id for m in window}
    pinned = [m for m in pinned if m.id not in window_set and m.id != new_id]
    notes_before = {n.before_message_id: n for n in kept_notes if n.before_message_id in window_set}

    sys_plain: ChatMessage = {
        "role": "system",
        "content": templates.render("system", system_prompt=system_prompt, summary=None),
    }
    system_tokens = counter.count_tokens([sys_plain])
    new_msg: ChatMessage = {"role": "user", "content": new.content}
    new_tokens = counter.count_tokens([sys_plain, new_msg]) - system_tokens
    if system_tokens + new_tokens > budget:
        raise BudgetError(
            too_large(system_tokens, new_tokens, budget, budget_settings, context_window)
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

    note_costs = {
        mid: message_cost(counter, "system", n.section.text or "")
        for mid, n in notes_before.items()
    }

    # Recall candidates with their line costs, best first.
    excluded = {m.id for m in pinned}
    if new.record is not None:
        excluded.add(new.record.id)
    candidates: list[tuple[RecallHit, str, int]] = []
    header_tokens = 0
    if use_recall and recall and recall_settings.max_hits > 0:
        header_tokens = counter.count_tokens(
            [sys_msg, {"role": "system", "content": templates.render("recall", excerpts=[])}]
        ) - counter.count_tokens([sys_msg])
        seen: set[int] = set()
        for item in recall:
            hit = item if isinstance(item, RecallHit) else RecallHit(item)
            rec = hit.record
            if rec.id in excluded or rec.id in seen:
                continue
            seen.add(rec.id)
            text = hit.text
            if text is None:
                text = excerpt(counter, rec.content, recall_settings.max_excerpt_tokens)
            line = templates.render(
                "recall_line", date=format_date(rec.created_at), role=rec.role, text=text
            )
            candidates.append((hit, text, counter.count_text(line) + 1))
    # Earlier turns' blocks and this turn's share the recall share, and a turn's block
    # takes at most a part of it, so that blocks can stay for a few turns. When the
    # kept blocks leave no room for this turn's best new excerpt, they are all dropped
    # at once (the prompt changes after the first of them once, not a little every turn).
    recall_share = int(budget_settings.recall_share * flex) if use_recall else 0
    shown_in_notes = {i for n in notes_before.values() for i in n.section.message_ids}
    fresh = [c for c in candidates if c[0].record.id not in shown_in_notes]
    kept_total = sum(note_costs.values())
    first_need = header_tokens + fresh[0][2] if fresh else 0
    if notes_before and fresh and kept_total + first_need > recall_share:
        notes.append(
            f"{len(notes_before)} recall blocks of earlier turns left out: the recall share is full"
        )
        notes_before, note_costs, kept_total = {}, {}, 0
        fresh = candidates
    candidates = fresh
    # A block holds at least its best excerpt when the share has room for it.
    best = header_tokens + candidates[0][2] if candidates else 0
    block_cap = max(recall_share // BLOCKS_PER_SHARE, min(best, recall_share - kept_total))
    # What this turn's block would take, counting only candidates that are not already
    # verbatim in the window (a candidate may sit in the part of the window that will
    # not fit; it is shown as an excerpt only if it is left out).
    outside = [c for c in candidates if c[0].record.id not in window_set]
    hits_outside = [h.record.id for h, _, _ in outside if h.partner_of is None]
    top = set(hits_outside[: recall_settings.max_hits])
    # The best hits with their partners: what this turn's block would hold at most.
    recall_need = header_tokens + sum(
        c for h, _, c in outside if h.record.id in top or h.partner_of in top
    )
    recall_reserved = (
        min(recall_share, kept_total + (min(recall_need, block_cap) if outside else 0))
        if (outside or kept_total)
        else 0
    )

    # Window: pinned older messages first, then the longest suffix that fits.
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

    # Recall fills what the window and the kept blocks left, up to its hit limit.
    in_window = {r.id for r, _ in suffix}
    recall_cap = min(avail - used - sum(note_costs.get(r.id, 0) for r, _ in suffix), block_cap)
    chosen: list[tuple[RecallHit, str, int]] = []
    spent = header_tokens
    hits = 0
    placed: set[int] = set()
    for hit, text, c in candidates:
        if hit.record.id in in_window or hit.record.id in placed:
            continue
        if hit.partner_of is None:
            if hits >= recall_settings.max_hits:
                break
            if spent + c > recall_cap:
                continue
            hits += 1
        elif hit.partner_of not in placed or spent + c > recall_cap:
            # A hit's question or reply comes right after it, when there is room.
            continue
        chosen.append((hit, text, c))
        placed.add(hit.record.id)
        spent += c

    def recall_block() -> str:
        items = sorted(chosen, key=lambda t: t[0].record.seq)
        excerpts = [
            {"date": format_date(h.record.created_at), "role": h.record.role, "text": text}
            for h, text, _ in items
        ]
        return templates.render("recall", excerpts=excerpts)

    def render() -> tuple[list[ChatMessage], list[tuple[str, int | None]]]:
        """The messages, and each one's part: system, window, note, recall or new (with an id)."""
        out: list[ChatMessage] = [sys_msg]
        parts: list[tuple[str, int | None]] = [("system", None)]
        for r, _ in kept_pinned:
            out.append({"role": r.role, "content": r.content})  # type: ignore[typeddict-item]
            parts.append(("window", r.id))
        for r, _ in suffix:
            note = notes_before.get(r.id)
            if note is not None:
                out.append({"role": "system", "content": note.section.text or ""})
                parts.append(("note", r.id))
            out.append({"role": r.role, "content": r.content})  # type: ignore[typeddict-item]
            parts.append(("window", r.id))
        if chosen:
            out.append({"role": "system", "content": recall_block()})
            parts.append(("recall", None))
        out.append(new_msg)
        parts.append(("new", None))
        return out, parts

    messages, parts = render()
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
        messages, parts = render()
        total = counter.count_tokens(messages)

    # Exact marginal counts: what each rendered message adds to the ones before it,
    # measured at every boundary between parts (a part is one section's run).
    marginal = _marginal_counts(counter, messages, parts)
    c_sys = marginal[0]
    window_tokens = sum(t for (kind, _), t in zip(parts, marginal, strict=True) if kind == "window")
    summary_section_tokens = c_sys - system_tokens if use_summary else 0

    window_records = [PlanMessage.from_record(r, c) for r, c in [*kept_pinned, *suffix]]
    sections: list[PlanSection] = [
        PlanSection(kind="system", tokens=c_sys - summary_section_tokens, text=system_prompt)
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
                tokens=window_tokens,
                message_ids=[m.id for m in window_records if m.id is not None],
                messages=window_records,
            )
        )
    for (kind, mid), tokens in zip(parts, marginal, strict=True):
        if kind == "note":
            assert mid is not None
            sections.append(
                notes_before[mid].section.model_copy(
                    update={"tokens": tokens, "before_message_id": mid}
                )
            )
    recall_tokens = sum(t for (kind, _), t in zip(parts, marginal, strict=True) if kind == "recall")
    if chosen:
        items = sorted(chosen, key=lambda t: t[0].record.seq)
        sections.append(
            PlanSection(
                kind="recall",
                tokens=recall_tokens,
                message_ids=[h.record.id for h, _, _ in items],
                messages=[
                    PlanMessage.from_record(h.record, c).model_copy(
                        update={"excerpt": text, "source": h.source, "score": round(h.score, 6)}
                    )
                    for h, text, c in items
                ],
                text=recall_block(),
                terms=list(recall_terms) if recall_terms is not None else None,
            )
        )
    new_record = (
        PlanMessage.from_record(new.record, new_tokens)
        if new.record is not None
        else PlanMessage(id=None, seq=None, role="user", content=new.content, tokens=new_tokens)
    )
    if new.record is not None and new.content != new.record.content:
        # The message was cut to fit the window: the prompt holds this part of it.
        new_record = new_record.model_copy(update={"excerpt": new.content})
    sections.append(
        PlanSection(
            kind="new",
            tokens=marginal[-1],
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
        messages=messages,  # type: ignore[arg-type]
        system_prompt=system_prompt,
        summary_id=summary.id if use_summary and summary is not None else None,
        covers_through_seq=(
            summary.covers_through_seq if summary is not None and policy != "window" else 0
        ),
        dropped_ids=sorted(dropped),
        notes=notes,
        recall_excerpt_tokens=recall_settings.max_excerpt_tokens,
    )


def _marginal_counts(
    counter: PromptCounter,
    messages: Sequence[ChatMessage],
    parts: Sequence[tuple[str, int | None]],
) -> list[int]:
    """What each message adds to the exact count of the ones before it.

    The count is taken at each boundary between runs of the same kind of part
    (a handful of boundaries, each one count of a prefix), and a run's tokens go
    to its messages by their share of characters; the last message takes the
    template's generation prompt. The values sum exactly to the total count.
    """
    bounds: list[int] = []
    for i in range(1, len(parts)):
        if parts[i][0] != parts[i - 1][0] or parts[i][0] == "note":
            bounds.append(i)
    bounds.append(len(parts))
    out = [0] * len(messages)
    start = 0
    previous = 0
    for end in bounds:
        count = counter.count_tokens(messages[:end])
        run = count - previous
        sizes = [len(messages[i]["content"]) + 1 for i in range(start, end)]
        whole = sum(sizes)
        given = 0
        for offset, size in enumerate(sizes):
            share = run - given if offset == len(sizes) - 1 else run * size // whole
            out[start + offset] = share
            given += share
        previous = count
        start = end
    return out
