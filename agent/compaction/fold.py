"""Compaction as it runs for one conversation: read the window, decide, summarize, store.

The decision itself is the pure `recursa.agent.compaction.decide.decide_compaction`;
this module reads its inputs from the store, calls the summarizer when the
decision says so, and writes the new summary (the store refuses a second one
for the same parent, so a compaction runs once even across processes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from recursa.agent.boundary import CompactionReport, CompactionWhen
from recursa.agent.compaction.decide import (
    CompactionDecision,
    WindowItem,
    decide_compaction,
    water_marks,
)
from recursa.agent.errors import RecursaError
from recursa.agent.planning.plan import compute_budget, flexible_budget, summary_cap
from recursa.agent.planning.prompt import message_costs, system_prompt
from recursa.agent.recall import usable
from recursa.agent.runtime.protocol import Runtime
from recursa.agent.settings import Settings
from recursa.agent.summarize import Summarizer, Turn, cut_to_tokens
from recursa.agent.templates import Templates
from recursa.memory.records import ConversationRecord, MessageRecord, SummaryRecord

if TYPE_CHECKING:
    from recursa.memory.store import Store

__all__ = [
    "CompactionJob",
    "EvictionUnit",
    "SummarizerFor",
    "compaction_job",
    "run_compaction",
]

log = logging.getLogger(__name__)

# The summarizer to use for a conversation's settings and runtime; called only
# when a compaction is due, so a separate summarizer model loads lazily.
SummarizerFor = Callable[[Settings, Runtime], Summarizer]
# What eviction keeps together: a chat evicts whole exchanges (a question with its
# answers); a composition evicts step by step, each message on its own.
EvictionUnit = Literal["exchange", "message"]


@dataclass
class CompactionJob:
    """A compaction decided but not yet run."""

    conv: ConversationRecord
    settings: Settings
    runtime: Runtime
    latest: SummaryRecord | None
    records: list[MessageRecord]
    decision: CompactionDecision
    summary_cap: int
    start: float


def compaction_job(
    store: Store,
    conv: ConversationRecord,
    settings: Settings,
    runtime: Runtime,
    *,
    pending_tokens: int = 0,
    must_evict_through_seq: int = 0,
    force: bool = False,
    before_seq: int | None = None,
    templates: Templates | None = None,
    unit: EvictionUnit = "exchange",
) -> CompactionJob:
    """Read the window and decide (no model call, no write).

    `before_seq` keeps messages from that seq on out of the eviction (the
    turn's own user message). `templates` render the system prompt the marks
    are measured against (default: the summarizer settings' version).
    """
    start = time.perf_counter()
    budget = compute_budget(runtime.context_window, settings.budget)
    templates = templates or Templates.load(settings.summarizer.template_version)
    system_text = templates.render(
        "system", system_prompt=system_prompt(conv, settings), summary=None
    )
    system_tokens = runtime.count_tokens([{"role": "system", "content": system_text}])
    flex = flexible_budget(budget, system_tokens)
    marks = water_marks(flex, settings.budget)
    latest = store.latest_summary(conv.id)
    covered = latest.covers_through_seq if latest else 0
    through = before_seq - 1 if before_seq is not None else None
    records = [
        r
        for r in store.messages(conv.id, after_seq=covered, through_seq=through)
        if usable(r) and not (unit == "message" and r.role == "system")
    ]
    costs = message_costs(store, runtime, records)
    # The decision groups messages into exchanges that start at a "user" message, so
    # with unit "message" each item is labelled as one.
    items = [
        WindowItem(r.id, r.seq, r.role if unit == "exchange" else "user", costs[r.id])
        for r in records
    ]
    if force and len(items) > 1:
        must_evict_through_seq = max(must_evict_through_seq, _last_exchange_start(items) - 1)
    decision = decide_compaction(
        items,
        marks,
        covered_through_seq=covered,
        pending_tokens=pending_tokens,
        must_evict_through_seq=must_evict_through_seq,
    )
    return CompactionJob(
        conv=conv,
        settings=settings,
        runtime=runtime,
        latest=latest,
        records=records,
        decision=decision,
        summary_cap=summary_cap(flex, settings.budget),
        start=start,
    )


def run_compaction(
    store: Store, job: CompactionJob, summarizer_for: SummarizerFor, *, when: CompactionWhen
) -> CompactionReport:
    """Summarize and store the job's eviction.

    Never raises for a model failure: the report says "failed" and the turn
    goes on with the plain window. A conflict (another process compacted
    first) is reported, not retried: its summary is as good as ours.
    """
    from recursa.memory.errors import CompactionConflict

    decision, latest, runtime = job.decision, job.latest, job.runtime
    start = job.start
    if not decision.needed:
        return CompactionReport(
            status="not_needed",
            when=when,
            window_tokens_before=decision.window_tokens_before,
            window_tokens_after=decision.window_tokens_after,
            duration_s=time.perf_counter() - start,
        )
    evicted_set = set(decision.evict_ids)
    turns = [Turn(r.role, r.content, r.created_at) for r in job.records if r.id in evicted_set]
    base = CompactionReport(
        status="failed",
        when=when,
        parent_id=latest.id if latest else None,
        covers_from_seq=decision.covers_from_seq,
        covers_through_seq=decision.covers_through_seq,
        evicted_ids=list(decision.evict_ids),
        window_tokens_before=decision.window_tokens_before,
        window_tokens_after=decision.window_tokens_after,
    )
    summarizer = summarizer_for(job.settings, runtime)
    try:
        result = summarizer.fold(
            latest.content if latest else None, turns, max_tokens=job.summary_cap
        )
    except RecursaError as exc:
        log.warning(
            "Summarizing conversation %s (seqs %s-%s) failed; the turn goes on with the plain "
            "window: %s",
            job.conv.id,
            decision.covers_from_seq,
            decision.covers_through_seq,
            exc,
        )
        return base.model_copy(
            update={
                "error": str(exc),
                "duration_s": time.perf_counter() - start,
                "notes": [f"summarization failed: {exc}"],
            }
        )
    tokens = runtime.count_text(result.content)
    if tokens > job.summary_cap:
        # Whatever the summarizer, the summary must fit its share of the budget.
        result.content = cut_to_tokens(runtime.count_text, result.content, job.summary_cap)
        result.notes.append(f"summary cut to its share of {job.summary_cap} tokens")
        tokens = runtime.count_text(result.content)
    try:
        record = store.add_summary(
            job.conv.id,
            content=result.content,
            covers_from_seq=decision.covers_from_seq,
            covers_through_seq=decision.covers_through_seq,
            parent_id=latest.id if latest else None,
            token_count=tokens,
            tokenizer_id=runtime.tokenizer_id,
            model=result.model,
            prompt_version=result.prompt_version,
            metadata={
                "duration_s": round(time.perf_counter() - start, 4),
                "summarizer_calls": result.calls,
                "chunks": result.chunks,
                "condensed": result.condensed,
                "evicted": len(decision.evict_ids),
                "notes": result.notes,
            },
        )
    except CompactionConflict as exc:
        log.info("Conversation %s was compacted by another process first: %s", job.conv.id, exc)
        return base.model_copy(
            update={
                "status": "conflict",
                "duration_s": time.perf_counter() - start,
                "summarizer_calls": result.calls,
                "notes": [f"another process compacted first; kept its summary ({exc})"],
            }
        )
    return base.model_copy(
        update={
            "status": "compacted",
            "summary_id": record.id,
            "summary_tokens": tokens,
            "summarizer_calls": result.calls,
            "duration_s": time.perf_counter() - start,
            "notes": list(result.notes),
        }
    )


def _last_exchange_start(items: Sequence[WindowItem]) -> int:
    for item in reversed(items):
        if item.role == "user":
            return item.seq
    return items[-1].seq
