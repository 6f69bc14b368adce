"""Gathering a conversation's context from the store and planning its next prompt.

The planner in `recursa.agent.planning.plan` is pure; this module feeds it: the latest
summary, the verbatim window read newest pages first, pinned and recalled
archived messages, and per-message token costs cached in the store.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from recursa.agent.planning.plan import (
    NewText,
    PromptPlan,
    build_plan,
    compute_budget,
    message_cost,
)
from recursa.agent.recall import recall_candidates, usable
from recursa.agent.runtime.protocol import Runtime
from recursa.agent.settings import Policy, Settings
from recursa.agent.templates import Templates
from recursa.memory.records import ConversationRecord, MessageRecord

if TYPE_CHECKING:
    from recursa.memory.store import Store

__all__ = ["check_fits", "message_costs", "plan_prompt", "system_prompt", "window_records"]


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
    missing = {
        r.id: message_cost(runtime, r.role, r.content) for r in records if r.id not in cached
    }
    if missing:
        store.store_token_counts(tid, missing)
        cached.update(missing)
    return cached


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
) -> PromptPlan:
    """The PromptPlan for `new` given everything the conversation has stored.

    A chat turn passes only `new`; a composition step passes its own templates,
    a policy without recall, and its header message to leave out of the window.
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
    pinned: list[MessageRecord] = []
    recalled: list[MessageRecord] = []
    if summary is not None:
        pinned = [p for p in store.pinned_messages(conv.id) if p.seq <= covered and usable(p)]
        costs.update(message_costs(store, runtime, pinned))
        if policy == "summary+recall":
            recalled = recall_candidates(
                store,
                conv.id,
                new.content,
                through_seq=covered,
                limit=settings.recall.max_hits,
                exclude={p.id for p in pinned},
            )

    def cost_of(r: MessageRecord) -> int:
        if r.id not in costs:
            costs.update(message_costs(store, runtime, [r]))
        return costs[r.id]

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
        recall=recalled,
        recall_settings=settings.recall,
        cost_of=cost_of,
        conversation_id=conv.id,
        model=runtime.name,
        context_window=runtime.context_window,
    )


def check_fits(conv: ConversationRecord, settings: Settings, runtime: Runtime, text: str) -> None:
    """Raise BudgetError when `text` cannot fit even beside the system prompt alone."""
    budget = compute_budget(runtime.context_window, settings.budget)
    templates = Templates.load(settings.summarizer.template_version)
    build_plan(
        counter=runtime,
        templates=templates,
        system_prompt=system_prompt(conv, settings),
        new=NewText(text),
        budget=budget,
        budget_settings=settings.budget,
        policy="window",
    )
