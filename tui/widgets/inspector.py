"""The inspector: what the model saw for a reply (its stored trace), or the next prompt.

It shows the plan section by section with each section's exact token count,
the summary chain the prompt used (each link with the messages it covers and a
button that jumps there), the recalled excerpts, and the rendered prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

from recursa.agent import PlanSection, PromptPlan, PromptTrace, SummaryInfo
from recursa.tui.safe_text import one_line, terminal_safe
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Collapsible, Static

SECTION_TITLES = {
    "system": "System prompt",
    "summary": "Summary",
    "recall": "Recalled excerpts",
    "window": "Window (verbatim turns)",
    "new": "New message",
}
MAX_LINE = 240


def _clip(text: str, limit: int = MAX_LINE) -> str:
    flat = one_line(" ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class SectionView(Collapsible):
    """One section of a prompt plan, titled with its token count."""

    def __init__(self, section: PlanSection) -> None:
        title = f"{SECTION_TITLES.get(section.kind, section.kind)} — {section.tokens} tokens"
        if section.messages:
            n = len(section.messages)
            title += f" ({n} message{'' if n == 1 else 's'})"
        super().__init__(
            Static(self._body(section)),
            title=title,
            collapsed=section.kind == "window" and len(section.messages) > 6,
        )
        self.kind = section.kind
        self.tokens = section.tokens

    @staticmethod
    def _body(section: PlanSection) -> Text:
        out = Text()
        if section.text and not (section.kind == "recall" and section.messages):
            # A recall block is shown as its messages (with their seq numbers); the
            # rendered block is in "Rendered prompt".
            out.append(terminal_safe(section.text.strip()) + "\n")
        if section.kind == "recall" and section.before_message_id is not None:
            out.append("kept from an earlier turn\n", style="dim")
        for m in section.messages:
            where = f"#{m.seq}" if m.seq is not None else "new"
            pin = " 📌" if m.pinned else ""
            header = f"{where} {m.role}{pin} ({m.tokens} tok"
            if m.source is not None:
                # How recall found it: full-text, semantic, date, both, or its hit's pair.
                score = f" {m.score:.4f}" if m.score is not None and m.source != "pair" else ""
                header += f", {m.source}{score}"
            out.append(header + "): ", style="bold")
            out.append(_clip(m.excerpt if m.excerpt is not None else m.content) + "\n")
        if not out.plain:
            out.append("(empty)", style="dim")
        return out


class ChainLink(Horizontal):
    """One summary of the chain: what it covers, and a button to jump there."""

    DEFAULT_CSS = """
    ChainLink { height: auto; margin: 0 0 1 0; }
    ChainLink Static { width: 1fr; }
    ChainLink Button { min-width: 10; width: auto; }
    """

    def __init__(self, summary: SummaryInfo, used: bool) -> None:
        super().__init__()
        self.summary = summary
        self.used = used

    def compose(self) -> ComposeResult:
        s = self.summary
        head = Text()
        head.append(f"summary {s.id}", style="bold")
        head.append(
            f" · depth {s.depth} · covers #{s.covers_from_seq}–#{s.covers_through_seq}"
            f" · {s.token_count} tokens"
        )
        if self.used:
            head.append(" · used by this prompt", style="italic")
        head.append("\n" + _clip(s.content, 400), style="dim")
        yield Static(head)
        yield Button(f"#{s.covers_from_seq}", id=f"jump-{s.id}", compact=True)


class Inspector(VerticalScroll):
    """The inspector panel (toggled with F3)."""

    DEFAULT_CSS = """
    Inspector { width: 64; dock: right; border-left: vkey $panel; padding: 0 1; }
    Inspector.-hidden { display: none; }
    Inspector .title { text-style: bold; color: $accent; margin: 0 0 1 0; }
    Inspector .heading { text-style: bold; margin: 1 0 0 0; }
    Inspector .dim { color: $text-muted; }
    Inspector Collapsible { padding: 0; border: none; }
    """

    class Jump(Message):
        """Open the current conversation at message `seq`."""

        def __init__(self, seq: int) -> None:
            super().__init__()
            self.seq = seq

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.subject: str = ""
        self.plan: PromptPlan | None = None

    def compose(self) -> ComposeResult:
        yield Static("Select a reply (Up/Down in the chat), or type a message.", classes="dim")

    async def show_note(self, text: str) -> None:
        self.plan = None
        await self.remove_children()
        await self.mount(Static(text, classes="dim"))

    async def show_trace(
        self, trace: PromptTrace, seq: int | None, chain: Sequence[SummaryInfo]
    ) -> None:
        """What the model saw for a stored reply."""
        timings = trace.timings
        facts = [f"model {trace.model}", f"{trace.total_tokens} / {trace.budget} tokens"]
        if timings.get("ttft_s") is not None:
            facts.append(f"TTFT {float(timings['ttft_s']) * 1000:.0f} ms")
        tps = trace.usage.get("decode_tokens_per_s")
        if tps:
            facts.append(f"{float(tps):.1f} tok/s")
        title = f"Reply #{seq}" if seq is not None else f"Reply {trace.message_id}"
        notes = list(trace.notes) + [
            f"compaction {c.when}: {c.status}"
            + (
                f", covers #{c.covers_from_seq}–#{c.covers_through_seq}"
                if c.covers_from_seq is not None
                else ""
            )
            for c in trace.compactions
        ]
        await self._show(title, " · ".join(facts), trace.plan, chain, notes)

    async def show_preview(
        self, plan: PromptPlan, chain: Sequence[SummaryInfo], *, placeholder: bool = False
    ) -> None:
        """The prompt the next turn would use for the text being typed.

        `placeholder`: the message box is empty, so the new message is empty too.
        """
        facts = f"{plan.total_tokens} / {plan.budget} tokens · {plan.free_tokens} free"
        notes = list(plan.notes)
        if placeholder:
            notes.append(
                "The message box is empty: this is the prompt as it stands, before your message."
            )
        if plan.dropped_ids:
            notes.append(
                f"{len(plan.dropped_ids)} window messages do not fit: the next turn compacts first"
            )
        await self._show("Next prompt (preview)", facts, plan, chain, notes)

    async def _show(
        self,
        title: str,
        facts: str,
        plan: PromptPlan,
        chain: Sequence[SummaryInfo],
        notes: Sequence[str],
    ) -> None:
        self.plan = plan
        self.subject = title
        widgets: list[Widget] = [
            Static(Text(one_line(title)), classes="title"),
            Static(Text(one_line(facts)), classes="dim"),
            Static("Sections", classes="heading"),
        ]
        widgets.extend(SectionView(s) for s in plan.sections)
        widgets.append(Static("Summary chain", classes="heading"))
        used = _chain_from(chain, plan.summary_id)
        if used:
            widgets.extend(ChainLink(s, used=s.id == plan.summary_id) for s in used)
        else:
            widgets.append(Static("No summary: every turn still fits verbatim.", classes="dim"))
        if notes:
            widgets.append(Static("Notes", classes="heading"))
            widgets.append(Static(Text(terminal_safe("\n".join(notes))), classes="dim"))
        rendered = Text()
        for m in plan.messages:
            rendered.append(f"[{m['role']}]\n", style="bold")
            rendered.append(terminal_safe(m["content"].rstrip()) + "\n")
        widgets.append(
            Collapsible(
                Static(rendered),
                collapsed=True,
                title=f"Rendered prompt ({len(plan.messages)} messages)",
            )
        )
        await self.remove_children()
        await self.mount_all(widgets)

    @on(Button.Pressed)
    def _jump(self, event: Button.Pressed) -> None:
        event.stop()
        link = event.button.parent
        if isinstance(link, ChainLink):
            self.post_message(self.Jump(link.summary.covers_from_seq))


def _chain_from(chain: Sequence[SummaryInfo], summary_id: int | None) -> list[SummaryInfo]:
    """The links from `summary_id` back to the first summary (the chain is latest first)."""
    if summary_id is None:
        return []
    ids = [s.id for s in chain]
    if summary_id not in ids:
        return []
    return list(chain[ids.index(summary_id) :])
