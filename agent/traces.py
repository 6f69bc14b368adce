"""Re-rendering a past reply's prompt from the stored records its trace names.

A trace stores the rendered prompt; this rebuilds it from the summary, window,
recalled and user messages by id, with the template version the plan recorded,
so an audit can tell whether the stored records still say what the model saw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from recursa.agent.boundary import PromptTrace
from recursa.agent.planning.plan import PlanSection, PromptPlan, excerpt, format_date
from recursa.agent.runtime.protocol import ChatMessage, Runtime
from recursa.agent.templates import Templates

if TYPE_CHECKING:
    from recursa.memory.store import Store

__all__ = ["reconstruct_prompt"]


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
    for section in plan.sections:
        if section.kind == "window":
            records = {r.id: r for r in store.messages_by_ids(section.message_ids)}
            out.extend(
                {"role": records[i].role, "content": records[i].content}  # type: ignore[misc]
                for i in section.message_ids
            )
        elif section.kind == "recall":
            content = _render_recall(store, plan, section, load_runtime(), default_excerpt_tokens)
            out.append({"role": "system", "content": content})
        elif section.kind == "new":
            ids = section.message_ids
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
    templates = Templates.load(plan.template_version)
    limit = plan.recall_excerpt_tokens or default_excerpt_tokens
    records = store.messages_by_ids(section.message_ids)
    excerpts = [
        {
            "date": format_date(r.created_at),
            "role": r.role,
            "text": excerpt(runtime, r.content, limit),
        }
        for r in records
    ]
    return templates.render("recall", excerpts=excerpts)
