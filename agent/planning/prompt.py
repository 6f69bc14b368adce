"""Gathering a conversation's context from the store and planning its next prompt.

The planner in `recursa.agent.planning.plan` is pure; this module feeds it: the latest
summary, the verbatim window read newest pages first, pinned messages, the recall
blocks earlier turns showed (kept in place), this turn's recalled messages
(`recursa.agent.recall`), and per-message token costs cached in the store.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from recursa.agent.errors import BudgetError
from recursa.agent.planning.models import PlanSection
from recursa.agent.planning.plan import (
    REFERENCE_SYSTEM,
    KeptNote,
    NewText,
    PromptPlan,
    RecallHit,
    build_plan,
    compute_budget,
    message_cost,
)
from recursa.agent.recall.fusion import SemanticSearch, find_hits, with_partners
from recursa.agent.recall.query import RecallQuery, build_query
from recursa.agent.recall.search import usable
from recursa.agent.runtime.protocol import ChatMessage, Runtime
from recursa.agent.settings import Policy, Settings
from recursa.agent.templates import Templates
from recursa.memory.records import ConversationRecord, MessageRecord

if TYPE_CHECKING:
    from recursa.memory.store import Store

__all__ = [
    "check_fits",
    "fit_message",
    "message_costs",
    "plan_prompt",
    "system_prompt",
    "window_records",
]


def system_prompt(conv: ConversationRecord, settings: Settings) -> str:
    """The conversation's own system prompt, or the default from settings."""
    return conv.system_prompt if conv.system_prompt is not None else settings.system_prompt


def message_costs(
    store: Store, runtime: Runtime, records: Sequence[MessageRecord]
) -> dict[int, int]:
    """Per-message prompt costs, from the store's cache; missing ones are counted and cached."""
    if not records:
        return {}
    tid = runtime.tokenizer_id
    cached = store.cached_token_counts([r.id for r in records], tid)
    todo = [r for r in records if r.id not in cached]
    batch = getattr(runtime, "count_batch", None)
    if batch is not None and len(todo) > 1:
        # A server tokenizer answers many prompts in one round of parallel requests.
        counts = batch([[REFERENCE_SYSTEM], *([REFERENCE_SYSTEM, _chat(r)] for r in todo)])
        missing = {r.id: count - counts[0] for r, count in zip(todo, counts[1:], strict=True)}
    else:
        missing = {r.id: message_cost(runtime, r.role, r.content) for r in todo}
    if missing:
        store.store_token_counts(tid, missing)
        cached.update(missing)
    return cached


def _chat(record: MessageRecord) -> ChatMessage:
    return {"role": record.role, "content": record.content}  # type: ignore[typeddict-item]


def window_records(
    store: Store,
    conv: ConversationRecord,
    after_seq: int,
    budget: int,
    runtime: Runtime,
    exclude_ids: Collection[int] = (),
) -> tuple[list[MessageRecord], dict[int, int]]:
    """Usable messages after `after_seq`, newest pages first, until they overflow `budget`.

    Reading stops once the messages read cannot all fit, so a long
    uncompacted history costs one page, not a full scan.
    """
    out: list[MessageRecord] = []
    costs: dict[int, int] = {}
    through: int | None = None
    total = 0
    page = 64
    while True:
        batch = store.messages(
            conv.id, after_seq=after_seq, through_seq=through, limit=page, newest_first=True
        )
        if not batch:
            break
        usable_batch = [r for r in batch if usable(r) and r.id not in exclude_ids]
        costs.update(message_costs(store, runtime, usable_batch))
        out.extend(usable_batch)
        total += sum(costs[r.id] for r in usable_batch)
        through = batch[-1].seq - 1
        if total > budget or len(batch) < page or through <= after_seq:
            break
        page = min(page * 4, 4096)
    out.reverse()
    return out, costs


def plan_prompt(
    store: Store,
    conv: ConversationRecord,
    settings: Settings,
    runtime: Runtime,
    new: NewText,
    *,
    templates: Templates | None = None,
    policy: Policy | None = None,
    exclude_ids: Collection[int] = (),
    semantic: SemanticSearch | None = None,
) -> PromptPlan:
    """The PromptPlan for `new` given everything the conversation has stored.

    A chat turn passes `new` and, for semantic recall, its vector index
    (`semantic`); a composition step passes its own templates, a policy without
    recall, and its header message to leave out of the window.

    Recall candidates are every usable message older than the window, whether a
    summary covers it or not, so an imported conversation is recallable at once.
    When the window does not fit whole, the messages it leaves out are
    candidates too: the plan is made again with them.
    """
    budget = compute_budget(runtime.context_window, settings.budget)
    policy = policy or settings.policy
    templates = templates or Templates.load(settings.summarizer.template_version)
    summary = store.latest_summary(conv.id) if policy != "window" else None
    covered = summary.covers_through_seq if summary else 0
    excluded = set(exclude_ids)
    if new.record is not None:
        excluded.add(new.record.id)
    window, costs = window_records(store, conv, covered, budget, runtime, excluded)
    window_ids = {r.id for r in window}
    first_seq = window[0].seq if window else _next_seq(conv, new)
    pinned: list[MessageRecord] = []
    if policy != "window":
        pinned = [
            p
            for p in store.pinned_messages(conv.id)
            if usable(p) and p.id not in window_ids and p.id not in excluded and p.seq < first_seq
        ]
        costs.update(message_costs(store, runtime, pinned))

    def cost_of(r: MessageRecord) -> int:
        if r.id not in costs:
            costs.update(message_costs(store, runtime, [r]))
        return costs[r.id]

    kept: list[KeptNote] = []
    query: RecallQuery | None = None
    if policy == "summary+recall":
        kept = kept_notes(store, window, summary.id if summary else None)
    # With nothing typed yet (a budget bar's preview) there is nothing to recall for.
    if policy == "summary+recall" and new.content.strip():
        previous = _previous_exchange(window)
        query = build_query(new.content, previous)

    def plan_with(before_seq: int, window: list[MessageRecord]) -> PromptPlan:
        hits: list[RecallHit] = []
        if query is not None and settings.recall.max_hits > 0:
            shown = excluded | {p.id for p in pinned}
            # The best hits now; those already in a kept block are not shown twice (the
            # planner leaves them out while their block is kept), so a question on the
            # same subject as the last one adds little.
            found = find_hits(
                store,
                conv.id,
                query,
                before_seq=before_seq,
                limit=settings.recall.max_hits,
                exclude=shown,
                semantic=semantic,
            )
            hits = with_partners(
                store,
                runtime,
                found.hits,
                terms=query.terms,
                max_excerpt_tokens=settings.recall.max_excerpt_tokens,
                before_seq=before_seq,
                exclude=shown,
                gate=found.gate,
            )
        return build_plan(
            counter=runtime,
            templates=templates,
            system_prompt=system_prompt(conv, settings),
            new=new,
            budget=budget,
            budget_settings=settings.budget,
            policy=policy,
            summary=summary,
            window=window,
            pinned=pinned,
            recall=hits,
            recall_settings=settings.recall,
            recall_terms=query.terms if query is not None else None,
            kept_notes=kept,
            cost_of=cost_of,
            conversation_id=conv.id,
            model=runtime.name,
            context_window=runtime.context_window,
        )

    plan = plan_with(first_seq, window)
    if query is not None and plan.dropped_ids:
        # The window's oldest messages did not fit: they are outside it, so recall may
        # bring back what matters of them. They stay reported as dropped (compaction due).
        kept_window = plan.section("window")
        seqs = [m.seq for m in kept_window.messages if m.seq is not None] if kept_window else []
        start = min((s for s in seqs if s >= first_seq), default=_next_seq(conv, new))
        again = plan_with(start, [r for r in window if r.seq >= start])
        dropped = sorted({*plan.dropped_ids, *again.dropped_ids})
        plan = again.model_copy(update={"dropped_ids": dropped})
    return plan


def kept_notes(
    store: Store, window: Sequence[MessageRecord], summary_id: int | None
) -> list[KeptNote]:
    """The recall blocks the previous turn's prompt showed, kept in place for this one.

    They are read from the latest reply's stored plan: the blocks it kept and
    its own block, which now stands before that turn's user message. So this
    prompt is the previous one plus its reply and what this turn adds, and a
    runtime reuses its KV cache for all of it. Blocks the previous turn left out
    (its recall share was full) stay out: bringing them back would insert them
    in the middle and re-encode everything after them. Blocks recalled under
    another summary, or a reply without a plan, start afresh.
    """
    users = {r.id for r in window if r.role == "user"}
    replies = [r.id for r in window if r.role == "assistant"]
    if not users or not replies:
        return []
    traces = store.traces_of(replies[-1:])
    if not traces:
        return []
    trace = traces[-1]
    plan = trace.plan
    if plan.get("summary_id") != summary_id or plan.get("policy") != "summary+recall":
        return []
    out: dict[int, KeptNote] = {}
    for section in plan.get("sections", []):
        if section.get("kind") != "recall":
            continue
        anchor = section.get("before_message_id") or trace.user_message_id
        if anchor is not None and anchor in users and anchor not in out:
            out[anchor] = KeptNote(anchor, PlanSection.model_validate(section))
    return list(out.values())


def _previous_exchange(window: Sequence[MessageRecord]) -> list[MessageRecord]:
    """The last user message in the window and what followed it (the exchange before this one)."""
    for index in range(len(window) - 1, -1, -1):
        if window[index].role == "user":
            return list(window[index:])
    return list(window[-1:])


def _next_seq(conv: ConversationRecord, new: NewText) -> int:
    return new.record.seq if new.record is not None else conv.last_seq + 1


def check_fits(conv: ConversationRecord, settings: Settings, runtime: Runtime, text: str) -> None:
    """Raise BudgetError when `text` cannot fit even beside the system prompt alone."""
    check_fits_beside(system_prompt(conv, settings), settings, runtime, text)


def check_fits_beside(system: str, settings: Settings, runtime: Runtime, text: str) -> None:
    """Raise BudgetError when `text` and the system prompt `system` alone exceed the budget.

    The error names the model's context window (and where it was learnt) and the
    setting that sends a long message's beginning instead.
    """
    budget = compute_budget(runtime.context_window, settings.budget)
    templates = Templates.load(settings.summarizer.template_version)
    try:
        build_plan(
            counter=runtime,
            templates=templates,
            system_prompt=system,
            new=NewText(text),
            budget=budget,
            budget_settings=settings.budget,
            policy="window",
            context_window=runtime.context_window,
        )
    except BudgetError as exc:
        source = getattr(runtime, "window_source", None)
        where = f" ({source})" if source else ""
        raise BudgetError(
            f"{exc} The model's context window is {runtime.context_window} tokens{where}; "
            "to send long messages anyway, set budget.oversized_message to 'cut' "
            "(RECURSA_BUDGET__OVERSIZED_MESSAGE=cut): the prompt then holds the message's "
            "beginning and says what was left out."
        ) from exc


def fit_message(
    conv: ConversationRecord, settings: Settings, runtime: Runtime, text: str
) -> tuple[str, str | None]:
    """`text` as the prompt can hold it, and a note when it had to be cut.

    A message that fits beside the system prompt is returned whole. A longer one
    keeps its beginning, cut at a space, followed by a line saying how much was
    left out and why (what the model reads says so too); BudgetError when not even
    that fits.
    """
    budget = compute_budget(runtime.context_window, settings.budget)
    templates = Templates.load(settings.summarizer.template_version)
    sys_plain: ChatMessage = {
        "role": "system",
        "content": templates.render(
            "system", system_prompt=system_prompt(conv, settings), summary=None
        ),
    }
    system_tokens = runtime.count_tokens([sys_plain])
    room = budget - system_tokens

    def cost(content: str) -> int:
        return (
            runtime.count_tokens([sys_plain, {"role": "user", "content": content}]) - system_tokens
        )

    full = cost(text)
    if full <= room:
        return text, None
    marker = (
        f"\n\n[… the rest of this message was left out: the whole message is {full} tokens "
        f"and the model's context window is {runtime.context_window} tokens …]"
    )
    cuts = [m.start() for m in re.finditer(r"\s+", text)]
    lo, hi = -1, len(cuts) - 1  # the last cut that fits (-1: none)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(text[: cuts[mid]] + marker) <= room:
            lo = mid
        else:
            hi = mid - 1
    if lo < 0:
        raise BudgetError(
            f"The message is {full} tokens and not even its first words fit the prompt budget "
            f"of {budget} tokens (context window {runtime.context_window})."
        )
    kept = text[: cuts[lo]] + marker
    note = (
        f"the message ({full} tokens) was cut to {cost(kept)} tokens to fit the model's "
        f"context window of {runtime.context_window} tokens; the whole message is stored"
    )
    return kept, note
