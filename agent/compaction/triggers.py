"""Where compaction is triggered: before a reply, after a reply, and on request.

- Before a reply: the planned window did not fit the budget (`plan.dropped_ids`),
  so what was dropped is folded into the summary and the prompt planned again.
- After a reply: the window (with the reply) passed its high-water mark, so
  the oldest turns are folded now, while the reader reads, instead of at the
  start of the next turn.
- On request: `Agent.compact` (after an import, say).
- In the background: after a reply is stored, the same after-reply decision runs
  in the Agent's background worker (`compact_in_background`), the summarizer's
  generations marked as background work so a turn sent meanwhile goes first.

A chat turn (`recursa.agent.turns`) and a composition step
(`recursa.agent.compose.steps`) both go through these functions; each returns a
`CompactionJob` (decided, nothing written) or runs one. Running a job is
`recursa.agent.compaction.fold.run_compaction`.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from recursa.agent.boundary import CompactionReport
from recursa.agent.compaction.fold import (
    CompactionJob,
    EvictionUnit,
    SummarizerFor,
    compaction_job,
    run_compaction,
)
from recursa.agent.planning.plan import PromptPlan
from recursa.agent.runtime.protocol import Runtime
from recursa.agent.settings import Settings
from recursa.agent.templates import Templates
from recursa.memory.records import ConversationRecord

if TYPE_CHECKING:
    from recursa.memory.store import Store

__all__ = [
    "after_reply_job",
    "background_scope",
    "before_reply_job",
    "compact_in_background",
    "compact_on_request",
]


def before_reply_job(
    store: Store,
    conv: ConversationRecord,
    settings: Settings,
    runtime: Runtime,
    plan: PromptPlan,
    *,
    before_seq: int | None = None,
    templates: Templates | None = None,
    unit: EvictionUnit = "exchange",
) -> CompactionJob | None:
    """The compaction a plan calls for when its window did not fit; None when it fits.

    Everything the plan dropped must be evicted; `before_seq` keeps the turn's
    own user message out of it.
    """
    if not plan.dropped_ids or settings.policy == "window":
        return None
    dropped = store.messages_by_ids(plan.dropped_ids)
    job = compaction_job(
        store,
        conv,
        settings,
        runtime,
        must_evict_through_seq=max(r.seq for r in dropped),
        before_seq=before_seq,
        templates=templates,
        unit=unit,
    )
    return job if job.decision.needed else None


def after_reply_job(
    store: Store,
    conv: ConversationRecord,
    settings: Settings,
    runtime: Runtime,
    *,
    pending_tokens: int = 0,
    templates: Templates | None = None,
    unit: EvictionUnit = "exchange",
) -> CompactionJob | None:
    """The compaction due once a reply of `pending_tokens` joins the window; None if none is.

    Compacting past the high-water mark down to the low-water mark in one go
    keeps the prompt prefix unchanged for the next several turns.
    """
    if settings.policy == "window":
        return None
    job = compaction_job(
        store,
        conv,
        settings,
        runtime,
        pending_tokens=pending_tokens,
        templates=templates,
        unit=unit,
    )
    return job if job.decision.needed else None


def compact_on_request(
    store: Store,
    conv: ConversationRecord,
    settings: Settings,
    runtime: Runtime,
    summarizer_for: SummarizerFor,
    *,
    force: bool = False,
) -> CompactionReport:
    """Fold the window now if it is over its high-water mark (force: all but the last exchange)."""
    if settings.policy == "window":
        return CompactionReport(
            status="not_needed", when="explicit", notes=["policy 'window' keeps no summary"]
        )
    job = compaction_job(store, conv, settings, runtime, force=force)
    return run_compaction(store, job, summarizer_for, when="explicit")


def background_scope(*runtimes: Any) -> ExitStack:
    """Marks this thread's generations on each runtime as background work, where supported.

    A local runtime then lets a person's turn go first (see its `background()`);
    runtimes without priorities (HTTP, scripted) are left as they are.
    """
    stack = ExitStack()
    seen: set[int] = set()
    for runtime in runtimes:
        mark = getattr(runtime, "background", None)
        if runtime is None or id(runtime) in seen or not callable(mark):
            continue
        seen.add(id(runtime))
        stack.enter_context(mark())
    return stack


def compact_in_background(
    store: Store,
    conv: ConversationRecord,
    settings: Settings,
    runtime: Runtime,
    summarizer_for: SummarizerFor,
) -> CompactionReport | None:
    """The after-reply compaction, run once the reply is stored; None when none was due.

    Meant for a background thread: the summarizer's generations are background
    work, and a turn that starts meanwhile plans against the previous summary
    (a summary is one row, visible whole or not at all).
    """
    job = after_reply_job(store, conv, settings, runtime)
    if job is None:
        return None
    summarizer = summarizer_for(settings, runtime)
    with background_scope(runtime, getattr(summarizer, "runtime", None)):
        return run_compaction(store, job, lambda _s, _r: summarizer, when="after_reply")
