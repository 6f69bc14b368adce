"""Checks on text a caller hands the agent: a message, an opening, instructions.

One rule for every surface: text must be a string without NUL characters (which
neither SQLite's text functions nor PostgreSQL store), and a message to send
must say something.
"""

from __future__ import annotations

from recursa.agent.errors import InvalidInputError

__all__ = ["check_text"]


def check_text(text: object, *, name: str = "The message", allow_blank: bool = False) -> str:
    """`text`, or InvalidInputError saying what is wrong with it.

    `name` is how the error names the text ("The message", "prompt"...).
    `allow_blank` admits empty or whitespace-only text (a preview of the prompt
    while nothing is typed, an empty opening); a message to send must say something.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"{name} must be text, not {type(text).__name__}.")
    if not allow_blank and not text.strip():
        raise InvalidInputError(f"{name} is empty; type something to send.")
    if "\x00" in text:
        raise InvalidInputError(f"{name} contains a NUL character (U+0000); remove it.")
    return text
