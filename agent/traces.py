"""Prompt traces: stored with each generated reply, and re-rendered from the records they name.

`record_reply` commits a reply (a chat turn's or a composition step's) with its
trace in one transaction. A trace stores the rendered prompt;
`reconstruct_prompt` rebuilds it from the summary, window, recalled and user
messages by id, with the template version the plan recorded, so an audit can
tell whether the stored records still say what the model saw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from recursa.agent.boundary import CompactionReport, PromptTrace
from recursa.agent.planning.plan import PlanSection, PromptPlan, excerpt, format_date
from recursa.agent.recall.excerpts import sentence_excerpt
from recursa.agent.runtime.protocol import ChatMessage, GenerationParams, Runtime, Usage
from recursa.agent.templates import Templates

if TYPE_CHECKING:
    from recursa.memory.records import MessageRecord, MessageStatus, TraceRecord
    from recursa.memory.store import Store

__all__ = ["reconstruct_prompt", "record_reply"]


def record_reply(
    store: Store,
    conversation_id: int,
    text: str,
    *,
    status: MessageStatus,
    metadata: Mapping[str, Any],
    model: str,
    plan: PromptPlan,
    params: GenerationParams,
    usage: Usage | None,
    timings: Mapping[str, Any],
    compactions: Sequence[CompactionReport],
    notes: Sequence[str],
    user_message_id: int | None = None,
) -> tuple[MessageRecord, TraceRecord]:
    """Store a generated reply and its prompt trace together; return both records.

    The trace's timings gain the time to first token (from `usage`) and the
    compactions that ran for this reply.
    """
    from recursa.memory.store import NewTrace

    all_timings = dict(timings)
    if usage is not None and usage.time_to_first_token_s is not None:
        all_timings["ttft_s"] = usage.time_to_first_token_s
    all_timings["compactions"] = [c.model_dump(mode="json") for c in compactions]
    trace = NewTrace(
        model=model,
        budget=plan.budget,
        total_tokens=plan.total_tokens,
        user_message_id=user_message_id,
        summary_id=plan.summary_id,
        recalled_ids=plan.recalled_ids,
        window_ids=plan.window_ids,
        plan=plan.model_dump(mode="json"),
        params=params.model_dump(mode="json"),
        usage=usage.model_dump(mode="json") if usage is not None else {},
        timings=all_timings,
        notes=list(notes),
    )
    message, record = store.add_reply(
        conversation_id, text, status=status, metadata=dict(metadata), trace=trace
    )
    assert record is not None  # add_reply stores the trace it is given
    return message, record


def reconstruct_prompt(
    store: Store,
    trace: PromptTrace,
    *,
    load_runtime: Callable[[], Runtime],
    default_excerpt_tokens: int,
) -> list[ChatMessage]:
    """The prompt of `trace` rebuilt from the store.

    `load_runtime` is called only when the prompt had recalled excerpts (they
    are cut with the model's tokenizer); `default_excerpt_tokens` applies to
    traces that did not record their excerpt length.
    """
    plan = trace.plan
    templates = Templates.load(plan.template_version)
    summary = store.get_summary(plan.summary_id).content if plan.summary_id else None
    out: list[ChatMessage] = [
        {
            "role": "system",
            "content": templates.render(
                "system", system_prompt=plan.system_prompt, summary=summary
            ),
        }
    ]
    # Recall blocks kept from earlier turns go before the window message they precede.
    kept = {s.before_message_id: s for s in plan.recall_sections if s.before_message_id}
    runtime: Runtime | None = None

    def render_recall(section: PlanSection) -> ChatMessage:
        nonlocal runtime
        runtime = runtime or load_runtime()
        content = _render_recall(store, plan, section, runtime, default_excerpt_tokens)
        return {"role": "system", "content": content}

    for section in plan.sections:
        if section.kind == "window":
            records = {r.id: r for r in store.messages_by_ids(section.message_ids)}
            for i in section.message_ids:
                if i in kept:
                    out.append(render_recall(kept[i]))
                out.append({"role": records[i].role, "content": records[i].content})  # type: ignore[typeddict-item]
        elif section.kind == "recall" and section.before_message_id is None:
            out.append(render_recall(section))
        elif section.kind == "new":
            ids = section.message_ids
            shown = section.messages[0].excerpt if section.messages else None
            if shown is not None:
                content = shown  # a message cut to fit the window: the part that was sent
            else:
                content = store.get_message(ids[0]).content if ids else section.messages[0].content
            out.append({"role": "user", "content": content})
    return out


def _render_recall(
    store: Store,
    plan: PromptPlan,
    section: PlanSection,
    runtime: Runtime,
    default_excerpt_tokens: int,
) -> str:
    """A recall block re-rendered from its messages as stored now.

    Blocks that recorded their query words are cut to the sentences that matched
    them, as they were when planned; older ones by words, as they were then.
    """
    templates = Templates.load(plan.template_version)
    limit = plan.recall_excerpt_tokens or default_excerpt_tokens
    records = {r.id: r for r in store.messages_by_ids(section.message_ids)}
    excerpts = []
    for message_id in section.message_ids:
        r = records[message_id]
        if section.terms is not None:
            text = sentence_excerpt(runtime, r.content, section.terms, limit)
        else:
            text = excerpt(runtime, r.content, limit)
        excerpts.append({"date": format_date(r.created_at), "role": r.role, "text": text})
    return templates.render("recall", excerpts=excerpts)
