"""The budget bar: the next prompt's token budget split by section, and the last reply's speed."""

from __future__ import annotations

from recursa.agent import PromptPlan
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

# Section kind -> (label in the legend, colour of its part of the bar).
SEGMENTS: tuple[tuple[str, str, str], ...] = (
    ("system", "system", "#5f87d7"),
    ("summary", "summary", "#af87d7"),
    ("recall", "recall", "#d7af5f"),
    ("window", "window", "#5faf87"),
    ("new", "message", "#d75f87"),
)
FREE_COLOUR = "#3a3a3a"


def budget_figures(plan: PromptPlan) -> dict[str, int]:
    """The numbers the bar shows: tokens per section, free tokens and the budget."""
    figures = dict(plan.tokens_by_kind())
    figures["free"] = plan.free_tokens
    figures["budget"] = plan.budget
    figures["total"] = plan.total_tokens
    return figures


class BudgetBar(Widget):
    """One line of bar and one of figures; says so while a compaction runs, in a turn or after."""

    DEFAULT_CSS = """
    BudgetBar { height: 2; padding: 0 1; background: $panel; }
    """

    figures: reactive[dict[str, int] | None] = reactive(None, layout=False)
    compacting: reactive[bool] = reactive(False)
    # Old turns being folded into the summary after a reply, while the person types.
    folding: reactive[bool] = reactive(False)
    status: reactive[str] = reactive("")
    last_reply: reactive[str] = reactive("")

    def show_plan(self, plan: PromptPlan) -> None:
        self.figures = budget_figures(plan)

    def show_reply_speed(self, ttft_s: float | None, tokens_per_s: float | None) -> None:
        ttft = f"{ttft_s * 1000:.0f} ms" if ttft_s is not None else "—"
        tps = f"{tokens_per_s:.1f} tok/s" if tokens_per_s is not None else "—"
        self.last_reply = f"last reply: TTFT {ttft} · {tps}"

    def render(self) -> Text:
        width = max(20, self.size.width)
        out = Text(no_wrap=True, overflow="ellipsis")
        f = self.figures
        tail = self.status or self.last_reply
        if self.compacting:
            tail = "compacting…"
        elif self.folding:
            tail = "compacting in the background…"
        bar_width = max(10, width - len(tail) - 2) if tail else width
        if f is None:
            out.append("░" * bar_width, style=FREE_COLOUR)
            if tail:
                out.append(f"  {tail}", style="italic")
            out.append("\n")
            out.append(
                "prompt budget: no conversation open" if self.status == "" else "", style="dim"
            )
            return out
        budget = max(1, f["budget"])
        used_cells = 0
        for kind, _label, colour in SEGMENTS:
            cells = round(f[kind] * bar_width / budget)
            if f[kind] and not cells:
                cells = 1
            cells = min(cells, bar_width - used_cells)
            out.append("█" * cells, style=colour)
            used_cells += cells
        out.append("░" * max(0, bar_width - used_cells), style=FREE_COLOUR)
        if tail:
            out.append(f"  {tail}", style="bold italic" if self.compacting else "italic")
        out.append("\n")
        for kind, label, colour in SEGMENTS:
            out.append(label, style=f"bold {colour}")
            out.append(f" {f[kind]}  ")
        out.append(f"free {f['free']} of {f['budget']}", style="bold")
        return out
