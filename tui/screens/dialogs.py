"""Modal dialogs: an error with its fix, a yes/no confirmation, and a text prompt."""

from __future__ import annotations

from recursa.tui.safe_text import one_line, terminal_safe
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static, TextArea

DIALOG_CSS = """
{name} {{ align: center middle; background: $background 60%; }}
{name} > Vertical {{
    width: 76; max-width: 90%; height: auto; max-height: 90%;
    border: thick $primary; background: $surface; padding: 1 2;
}}
{name} .title {{ text-style: bold; margin: 0 0 1 0; }}
{name} .buttons {{ height: auto; align-horizontal: right; margin: 1 0 0 0; }}
{name} .buttons Button {{ margin: 0 0 0 2; }}
"""


class ErrorDialog(ModalScreen[str]):
    """A problem the user can fix: what went wrong, and what to do (the error's message).

    Dismisses with "quit" or "continue" (the latter only when the app can go on,
    e.g. browsing stored conversations without a model).
    """

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="ErrorDialog")
        + """
    ErrorDialog > Vertical { border: thick $error; }
    ErrorDialog .title { color: $error; }
    """
    )
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, title: str, message: str, *, can_continue: bool = True) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.can_continue = can_continue

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(one_line(self.title_text)), classes="title")
            yield Static(Text(terminal_safe(self.message)), id="error-message")
            with Horizontal(classes="buttons"):
                if self.can_continue:
                    yield Button("Continue without it", id="continue", variant="primary")
                yield Button("Quit", id="quit", variant="error")

    def on_mount(self) -> None:
        self.query_one("#continue" if self.can_continue else "#quit", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "quit")

    def action_close(self) -> None:
        self.dismiss("continue" if self.can_continue else "quit")


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; dismisses with True only for the confirming button."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmDialog")
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, confirm: str = "Delete") -> None:
        super().__init__()
        self.question = question
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(terminal_safe(self.question)), classes="title")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm, id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # the safe choice is the default

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)


class TextDialog(ModalScreen[str | None]):
    """Ask for a line (or, with multiline=True, a block) of text; None when cancelled."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="TextDialog")
        + """
    TextDialog TextArea { height: 10; }
    """
    )
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(
        self, title: str, value: str = "", *, multiline: bool = False, hint: str = ""
    ) -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.multiline = multiline
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(one_line(self.title_text)), classes="title")
            if self.multiline:
                yield TextArea(self.value, id="value", soft_wrap=True)
            else:
                yield Input(self.value, id="value")
            if self.hint:
                yield Static(Text(self.hint), classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Save", id="save", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#value").focus()

    def _current(self) -> str:
        widget = self.query_one("#value")
        return widget.text if isinstance(widget, TextArea) else widget.value  # type: ignore[attr-defined]

    @on(Input.Submitted)
    def action_save(self) -> None:
        self.dismiss(self._current())

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
