"""The message box: a multi-line TextArea where Enter sends and Ctrl+J inserts a line break."""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea

# Terminals report a line-break request in different ways; all of these insert one.
NEWLINE_KEYS = frozenset({"ctrl+j", "shift+enter", "alt+enter"})


class Composer(TextArea):
    """Multi-line input. Enter posts `Composer.Submitted`; Ctrl+J (or Shift+Enter) adds a line."""

    DEFAULT_CSS = """
    Composer {
        height: auto;
        min-height: 3;
        max-height: 10;
        border: round $primary 50%;
    }
    Composer:focus { border: round $primary; }
    """

    class Submitted(Message):
        """The user pressed Enter with this text in the box."""

        def __init__(self, composer: Composer, text: str) -> None:
            super().__init__()
            self.composer = composer
            self.text = text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.border_subtitle = "Enter send · Ctrl+J new line"

    async def _on_key(self, event: events.Key) -> None:
        if self.read_only:
            return
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Submitted(self, self.text))
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        await super()._on_key(event)
