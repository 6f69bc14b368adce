"""The "New composition" dialog: opening text, instructions, preset and token sizes, validated.

It only asks: it dismisses with a `CompositionRequest` (or None when
cancelled) and its screen starts the composition. Bad sizes are shown in the
dialog, next to the buttons, and nothing is dismissed until they are fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recursa.tui.screens.dialogs import DIALOG_CSS
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

DEFAULT_TARGET_TOKENS = 1024


@dataclass(frozen=True)
class CompositionRequest:
    """What the user asked for; the arguments of `Agent.compose`."""

    opening: str
    instructions: str | None
    preset: str | None
    target_tokens: int
    step_tokens: int


def positive_tokens(label: str, value: str) -> int:
    """A whole number of tokens above zero, or ValueError with a message for the dialog."""
    text = value.strip().replace("_", "")
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"{label} must be a whole number of tokens above 0, not {value!r}.")
    return int(text)


class ComposeDialog(ModalScreen[CompositionRequest | None]):
    """Ask for a new composition; `presets` are (name, description) pairs to choose from."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="ComposeDialog")
        + """
    ComposeDialog #opening { height: 5; }
    ComposeDialog Label { color: $text-muted; }
    ComposeDialog .sizes { height: auto; }
    ComposeDialog .sizes > Vertical { width: 1fr; height: auto; }
    ComposeDialog #compose-error { color: $error; height: auto; }
    """
    )
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "start", "Start")]

    def __init__(
        self,
        presets: Sequence[tuple[str, str]],
        *,
        target_tokens: int = DEFAULT_TARGET_TOKENS,
        step_tokens: int,
    ) -> None:
        super().__init__()
        self.presets = list(presets)
        self.target_tokens = target_tokens
        self.step_tokens = step_tokens

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("New composition (Ctrl+S starts)"), classes="title")
            yield Label("Opening text (may be empty with a preset)")
            yield TextArea("", id="opening", soft_wrap=True)
            yield Label("Instructions (empty: the preset's, or the default)")
            yield Input("", id="instructions")
            yield Label("Preset")
            yield Select(
                [(f"{name} — {about}" if about else name, name) for name, about in self.presets],
                prompt="none",
                id="preset",
            )
            with Horizontal(classes="sizes"):
                with Vertical():
                    yield Label("Target tokens")
                    yield Input(str(self.target_tokens), id="target", type="text")
                with Vertical():
                    yield Label("Tokens per step")
                    yield Input(str(self.step_tokens), id="step", type="text")
            yield Static("", id="compose-error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Start", id="start", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#opening", TextArea).focus()

    def request(self) -> CompositionRequest:
        """The dialog's values, validated; ValueError names the field to fix."""
        instructions = self.query_one("#instructions", Input).value.strip()
        preset = self.query_one("#preset", Select).value
        return CompositionRequest(
            opening=self.query_one("#opening", TextArea).text,
            instructions=instructions or None,
            preset=preset if isinstance(preset, str) else None,
            target_tokens=positive_tokens("Target tokens", self.query_one("#target", Input).value),
            step_tokens=positive_tokens("Tokens per step", self.query_one("#step", Input).value),
        )

    @on(Input.Submitted)
    def action_start(self) -> None:
        try:
            request = self.request()
        except ValueError as exc:
            self.query_one("#compose-error", Static).update(Text(str(exc)))
            return
        self.dismiss(request)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
