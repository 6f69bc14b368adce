"""Checks on text a caller hands the agent: a message, an opening, instructions.

One rule for every surface: text must be a string without NUL characters (which
neither SQLite's text functions nor PostgreSQL store) or unpaired surrogates
(not Unicode text), and a message to send must say something.
"""

from __future__ import annotations

from recursa.agent.errors import InvalidInputError
from recursa.memory.validation import MAX_ID, record_id

__all__ = ["MAX_ID", "check_count", "check_id", "check_text"]


def check_id(value: object, name: str = "id") -> int:
    """`value` as a record id (1 to 2**63-1), or InvalidInputError saying what is wrong.

    Every id that reaches the agent from outside goes through this one check, so
    an id past the 64-bit limit is a usage error on both databases instead of a
    driver overflow.
    """
    return record_id(name, value)


def check_count(value: object, name: str) -> int:
    """`value` as a count or sequence number: a whole number from 0 to 2**63-1."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a whole number, not {type(value).__name__}.")
    if not 0 <= value <= MAX_ID:
        raise InvalidInputError(f"{name} must be from 0 to {MAX_ID}, not {value}.")
    return value


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
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{name} contains an unpaired surrogate (at character {exc.start}), which is not "
            "valid Unicode text; decode the input as UTF-8 (errors='replace') first."
        ) from exc
    return text
