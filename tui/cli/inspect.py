"""`recursa prompt`, `recursa trace`, `recursa summaries`: what the model sees and saw."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from recursa.tui.cli.common import (
    ID,
    add_row,
    console,
    echo_json,
    ids,
    json_option,
    model_option,
    open_agent,
    short,
    table,
    when,
)
from rich.markup import escape

if TYPE_CHECKING:
    from recursa.agent.planning.models import PlanMessage, PlanSection, PromptPlan
    from rich.table import Table

BAR_WIDTH = 60
# One character per section kind in the budget bar; '.' is free budget.
BAR_MARKS = {"system": "S", "summary": "s", "recall": "r", "window": "w", "new": "n"}


@click.command("prompt")
@click.argument("conversation_id", metavar="ID", type=ID)
@click.argument("text", required=False)
@model_option
@json_option
def prompt_command(
    conversation_id: int, text: str | None, model: str | None, as_json: bool
) -> None:
    """Plan the next prompt of conversation ID for TEXT; store and generate nothing.

    Without TEXT, the plan is for an empty new message: the prompt as it stands.
    Loads the model to count tokens with its own tokenizer.
    """
    with open_agent(model=model, conversation_id=conversation_id) as agent:
        plan = agent.preview_prompt(conversation_id, text or "")
    if as_json:
        echo_json(plan)
        return
    out = console()
    out.print(plan_table(plan, title=f"Next prompt of conversation {conversation_id}"))
    out.print(budget_bar(plan), markup=False)
    for line in plan_footer(plan):
        out.print(line, markup=False)


@click.command("trace")
@click.argument("message_id", type=ID)
@click.option("--raw", is_flag=True, help="Print only the messages exactly as sent.")
@json_option
def trace_command(message_id: int, raw: bool, as_json: bool) -> None:
    """Show the exact prompt a stored reply (MESSAGE_ID) was generated from, section by section."""
    with open_agent() as agent:
        trace = agent.trace(message_id)
    if as_json:
        echo_json(trace)
        return
    out = console()
    if raw:
        for m in trace.plan.messages:
            out.print(f"--- {m['role']} ---", markup=False)
            out.print(m["content"], markup=False)
        return
    plan = trace.plan
    out.print(
        f"Reply {trace.message_id} in conversation {trace.conversation_id}, "
        f"{when(trace.created_at)}, model {trace.model}",
        markup=False,
    )
    out.print(plan_table(plan))
    out.print(budget_bar(plan), markup=False)
    for line in plan_footer(plan):
        out.print(line, markup=False)
    usage = trace.usage
    if usage:
        out.print(
            f"usage: prompt {usage.get('prompt_tokens')} tokens "
            f"(reused from cache {usage.get('reused_tokens', 0)}), "
            f"reply {usage.get('completion_tokens')} tokens, finish {usage.get('finish_reason')}",
            markup=False,
        )
    if trace.timings:
        out.print(
            "timings: " + ", ".join(f"{k} {v}" for k, v in trace.timings.items()), markup=False
        )
    for c in trace.compactions:
        out.print(
            f"compaction ({c.when}): {c.status}, summary {c.summary_id}, "
            f"covers through #{c.covers_through_seq}",
            markup=False,
        )
    for note in trace.notes:
        out.print(f"note: {note}", markup=False)
    for section in plan.sections:
        out.print()
        out.print(f"[bold]── {section.kind}[/bold] ({section.tokens} tokens)", markup=True)
        _print_section(section)


def _print_section(section: PlanSection) -> None:
    out = console()
    if section.kind == "recall" and section.before_message_id is not None:
        out.print(
            f"(kept from an earlier turn, before message id {section.before_message_id})",
            markup=False,
        )
    if section.messages:
        for m in section.messages:
            label = f"#{m.seq} {m.role}" if m.seq is not None else m.role
            if m.id is not None:
                label += f" (id {m.id})"
            if m.source is not None:
                label += f" {recall_label(m)}"
            out.print(f"[{label}]", markup=False)
            out.print(m.excerpt if m.excerpt is not None else m.content, markup=False)
    elif section.text is not None:
        out.print(section.text, markup=False)


@click.command("summaries")
@click.argument("conversation_id", metavar="ID", type=ID)
@click.option("--full", is_flag=True, help="Print each summary's whole text.")
@json_option
def summaries_command(conversation_id: int, full: bool, as_json: bool) -> None:
    """The summary chain of conversation ID, latest first, with the messages each covers."""
    with open_agent(conversation_id=conversation_id) as agent:
        chain = agent.summaries(conversation_id)
    if as_json:
        echo_json(chain)
        return
    if not chain:
        click.echo(
            f"Conversation {conversation_id} has no summary yet: its whole history "
            "still fits the prompt."
        )
        return
    out = console()
    if full:
        for s in chain:
            out.print(
                f"[bold]summary {s.id}[/bold] (depth {s.depth}, covers "
                f"#{s.covers_from_seq}-#{s.covers_through_seq}, folds in "
                f"{s.parent_id or 'nothing'}, {s.token_count} tokens, "
                f"{escape(s.model or '-')})",
                markup=True,
            )
            out.print(s.content, markup=False)
            out.print()
        return
    t = table("ID", "Depth", "Covers", "Folds in", "Tokens", "Model", "Created", "Text")
    for s in chain:
        add_row(
            t,
            str(s.id),
            str(s.depth),
            f"#{s.covers_from_seq}-#{s.covers_through_seq}",
            str(s.parent_id or "-"),
            str(s.token_count),
            s.model or "",
            when(s.created_at),
            short(s.content, 50),
        )
    out.print(t)


# --- shared by prompt and trace -------------------------------------------------------------


def recall_label(m: PlanMessage) -> str:
    """How a recalled message was found, e.g. "semantic 0.0161" or "pair"."""
    if m.source == "pair" or m.score is None:
        return str(m.source)
    return f"{m.source} {m.score:.4f}"


def plan_table(plan: PromptPlan, title: str | None = None) -> Table:
    t = table("Section", "Tokens", "Of budget", "Message ids", "Content", title=title)
    for s in plan.sections:
        share = f"{s.tokens / plan.budget:.0%}" if plan.budget else ""
        content = (
            s.text
            if s.text is not None
            else " | ".join(f"{m.role}: {m.content}" for m in s.messages)
        )
        add_row(t, s.kind, str(s.tokens), share, ids(s.message_ids), short(content, 40))
    add_row(
        t,
        "free",
        str(plan.free_tokens),
        f"{plan.free_tokens / plan.budget:.0%}" if plan.budget else "",
        "",
        "",
    )
    return t


def budget_bar(plan: PromptPlan) -> str:
    """The budget as one line: S system, s summary, r recall, w window, n new, . free."""
    if plan.budget <= 0:
        return ""
    cells: list[str] = []
    for s in plan.sections:
        # A section that is present gets at least one cell, so it is never invisible.
        width = max(1, round(BAR_WIDTH * s.tokens / plan.budget)) if s.tokens > 0 else 0
        cells += BAR_MARKS.get(s.kind, "?") * width
    bar = "".join(cells)[:BAR_WIDTH].ljust(BAR_WIDTH, ".")
    return f"[{bar}]\n S system  s summary  r recall  w window  n new  . free"


def plan_footer(plan: PromptPlan) -> list[str]:
    lines = [
        f"total {plan.total_tokens} of budget {plan.budget} tokens "
        f"(context window {plan.context_window}); model {plan.model}, "
        f"tokenizer {plan.tokenizer_id}, policy {plan.policy}",
    ]
    if plan.summary_id is not None:
        lines.append(
            f"summary {plan.summary_id} covers messages through #{plan.covers_through_seq}"
        )
    if plan.dropped_ids:
        lines.append(f"did not fit (compaction due): {ids(plan.dropped_ids)}")
    for section in plan.recall_sections:
        kept = section.before_message_id is not None
        for m in section.messages:
            where = "kept" if kept else "recalled"
            text = short(m.excerpt if m.excerpt is not None else m.content, 60)
            lines.append(f"{where} #{m.seq} {m.role} ({recall_label(m)}): {text}")
    lines += [f"note: {n}" for n in plan.notes]
    return lines
