"""The table of user actions: one entry per action, feeding key bindings, the palette and help.

Keeping keys, descriptions and scopes in one list means the command palette,
the footer and the help screen can never disagree about what a key does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textual.binding import Binding

Scope = Literal["app", "messages", "sidebar", "composer"]

SCOPE_TITLES: dict[Scope, str] = {
    "app": "Anywhere",
    "composer": "Message box",
    "messages": "Messages (select one with Up/Down in the chat)",
    "sidebar": "Conversation list",
}


@dataclass(frozen=True)
class Command:
    """One user action: the action name it runs, its key(s) and what it does."""

    action: str
    keys: str
    title: str
    help: str
    scope: Scope = "app"
    show_in_footer: bool = False
    palette: bool = True

    @property
    def key_display(self) -> str:
        return " / ".join(_pretty(k) for k in self.keys.split(","))

    def binding(self, namespace: str = "") -> Binding:
        action = f"{namespace}.{self.action}" if namespace else self.action
        return Binding(self.keys, action, self.title, show=self.show_in_footer)


KEY_NAMES = {"plus": "+", "minus": "-", "equals_sign": "=", "escape": "Esc"}


def _pretty(key: str) -> str:
    """'ctrl+shift+a' -> 'Ctrl+Shift+A', 'plus' -> '+'."""
    if key in KEY_NAMES:
        return KEY_NAMES[key]
    parts = key.split("+")
    *mods, last = parts
    shown = (
        last.upper() if len(last) == 1 and mods else (last if len(last) == 1 else last.capitalize())
    )
    return "+".join([*(m.capitalize() for m in mods), shown])


COMMANDS: tuple[Command, ...] = (
    # anywhere
    Command("help", "f1", "Help", "Show this list of keys and commands.", show_in_footer=True),
    Command(
        "new_conversation",
        "ctrl+n",
        "New conversation",
        "Start a new, empty conversation.",
        show_in_footer=True,
    ),
    Command(
        "rename_conversation",
        "f2",
        "Rename",
        "Rename the current conversation.",
        show_in_footer=True,
    ),
    Command(
        "toggle_inspector",
        "f3",
        "Inspector",
        "Show or hide the inspector: what the model saw for the selected reply, "
        "or the next prompt for the message being typed.",
        show_in_footer=True,
    ),
    Command(
        "edit_system_prompt",
        "f4",
        "System prompt",
        "Edit the current conversation's system prompt.",
        show_in_footer=True,
    ),
    Command(
        "regenerate", "ctrl+r", "Regenerate", "Answer the last message again.", show_in_footer=True
    ),
    Command(
        "stop",
        "escape",
        "Stop",
        "Stop the reply or composition being generated (the partial text is kept, marked).",
        show_in_footer=True,
    ),
    Command(
        "new_composition",
        "f5",
        "New composition",
        "Write a long text step by step from an opening, instructions or a preset; "
        "it grows past the context window from its own summary (Esc stops it).",
    ),
    Command(
        "resume_composition",
        "ctrl+g",
        "Resume composition",
        "Go on writing the open composition from its last stored step "
        "(after a stop, an error or a crash).",
    ),
    Command(
        "search",
        "ctrl+f",
        "Search",
        "Search all conversations; choosing a result opens it at that message.",
    ),
    Command("toggle_sidebar", "ctrl+b", "Sidebar", "Show or hide the conversation list."),
    Command(
        "focus_messages",
        "ctrl+up",
        "Select messages",
        "Move the focus to the messages (Up/Down select one).",
    ),
    Command("focus_composer", "ctrl+down", "Type a message", "Move the focus to the message box."),
    Command(
        "archive_conversation",
        "f9,ctrl+shift+a",
        "Archive conversation",
        "Archive the current conversation (it leaves the list; its memory stays).",
    ),
    Command(
        "delete_conversation",
        "f8,ctrl+shift+d",
        "Delete conversation",
        "Delete the current conversation, after confirmation.",
    ),
    # the selected message
    Command(
        "pin_message",
        "p",
        "Pin / unpin message",
        "Pin the selected message (pinned messages always stay in the prompt), or unpin it.",
        scope="messages",
        show_in_footer=True,
    ),
    Command(
        "copy_message",
        "y,c",
        "Copy message",
        "Copy the selected message to the clipboard.",
        scope="messages",
        show_in_footer=True,
    ),
    Command(
        "rate_good",
        "plus,equals_sign",
        "Rate reply good",
        "Rate the selected reply as good (used to pick fine-tuning data).",
        scope="messages",
        show_in_footer=True,
    ),
    Command(
        "rate_bad",
        "minus",
        "Rate reply bad",
        "Rate the selected reply as bad.",
        scope="messages",
        show_in_footer=True,
    ),
    Command(
        "inspect_message",
        "i,enter",
        "Inspect message",
        "Open the inspector on the selected reply.",
        scope="messages",
        show_in_footer=True,
    ),
    # the composer (documented here; the widget handles the keys itself)
    Command("send", "enter", "Send", "Send the message.", scope="composer", palette=False),
    Command(
        "newline",
        "ctrl+j,shift+enter,alt+enter",
        "New line",
        "Insert a line break in the message.",
        scope="composer",
        palette=False,
    ),
    # the conversation list
    Command(
        "open_conversation",
        "enter",
        "Open",
        "Open the highlighted conversation.",
        scope="sidebar",
        palette=False,
    ),
    Command(
        "sidebar_rename",
        "r",
        "Rename",
        "Rename the highlighted conversation.",
        scope="sidebar",
        palette=False,
        show_in_footer=True,
    ),
    Command(
        "sidebar_archive",
        "a",
        "Archive",
        "Archive the highlighted conversation.",
        scope="sidebar",
        palette=False,
        show_in_footer=True,
    ),
    Command(
        "sidebar_delete",
        "delete,d",
        "Delete",
        "Delete the highlighted conversation (asks first).",
        scope="sidebar",
        palette=False,
        show_in_footer=True,
    ),
)


def bindings(scope: Scope, namespace: str = "") -> list[Binding]:
    """The key bindings of one scope, optionally running in another namespace ("screen")."""
    return [
        c.binding(namespace) for c in COMMANDS if c.scope == scope and c.action not in _WIDGET_OWNED
    ]


# Keys the widgets implement in their own event handlers (documented, not bound).
_WIDGET_OWNED = {"send", "newline", "open_conversation"}
