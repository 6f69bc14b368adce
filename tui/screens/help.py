"""The help screen: every command with its key, grouped by where it works."""

from __future__ import annotations

from recursa.tui.commands import COMMANDS, SCOPE_TITLES
from rich.console import Group, RenderableType
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def help_table() -> Group:
    """One table per place a key works, then the app-wide keys Textual provides."""
    tables: list[Table] = []
    for scope, title in SCOPE_TITLES.items():
        table = _table(title)
        for c in COMMANDS:
            if c.scope == scope:
                table.add_row(c.key_display, c.title, c.help)
        tables.append(table)
    general = _table("Textual")
    general.add_row("Ctrl+P", "Command palette", "Every command above, by name (and themes).")
    general.add_row("Tab / Shift+Tab", "Move focus", "Between the list, the messages and the box.")
    general.add_row("Ctrl+Q", "Quit", "")
    tables.append(general)
    spaced: list[RenderableType] = []
    for table in tables:
        spaced += [table, ""]
    return Group(*spaced)


def _table(title: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold underline",
        box=None,
        expand=True,
        show_header=False,
        padding=(0, 2, 0, 0),
    )
    table.add_column("key", style="bold", no_wrap=True, min_width=18)
    table.add_column("command", no_wrap=True, min_width=20)
    table.add_column("what it does", ratio=1)
    return table


class HelpScreen(ModalScreen[None]):
    """Keys and commands (F1)."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background 60%; }
    HelpScreen > VerticalScroll {
        width: 100; max-width: 95%; height: 90%; border: thick $primary;
        background: $surface; padding: 1 2;
    }
    """
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("[b]recursa — keys and commands[/b]\n")
            yield Static(help_table())
