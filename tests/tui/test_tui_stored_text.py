"""The TUI shows stored text as text: never as Textual/Rich markup, never as terminal escapes."""

from __future__ import annotations

from recursa.agent import Agent
from recursa.tui.widgets.chat import MessageView
from tui_helpers import document, ready, screen_text

TITLE = "[bold red]Evil[/] \x1b[2J title"
USER = "[link=https://x]click[/link] \x1b]0;pwned\x07 and \u202eevil"
REPLY = "[b]not bold[/b] \x1b[31mred\x1b[0m"


async def test_stored_markup_and_escape_sequences_are_shown_as_text(make_app, seed: Agent):
    """A title and messages holding markup and escape sequences (as an import can bring)
    appear literally, with control characters as visible escapes, and reach no terminal."""
    seed.import_conversation(document(TITLE, [("user", USER), ("assistant", REPLY)]))
    app = make_app()
    async with app.run_test(size=(140, 36)) as pilot:
        screen = await ready(pilot)
        shown = screen_text(app)
        assert "[bold red]Evil[/] \\x1b[2J title" in shown  # sidebar: brackets kept, ESC visible
        assert "[link=https://x]click[/link] \\x1b]0;pwned\\x07" in shown
        assert "\\u202eevil" in shown
        assert "[b]not bold[/b] \\x1b[31mred\\x1b[0m" in shown  # the Markdown reply too
        assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
        # The views keep the stored text exactly (copying a message copies what was stored).
        assert [v.text for v in screen.chat.query(MessageView)] == [USER, REPLY]
        screen.notify(f"Archived {TITLE}", title=TITLE)  # a notification is text too
        await pilot.pause()
        (note,) = list(app._notifications)
        assert note.message == "Archived [bold red]Evil[/] \\x1b[2J title" and not note.markup
        assert note.title == "[bold red]Evil[/] \\x1b[2J title"
