"""Rating replies good or bad, stored with the message, so exports can keep only approved ones.

`rate_reply` is the one rating rule; `Agent.rate` (used by the CLI's `recursa
rate` and the TUI's rate keys) goes through it.
"""

from __future__ import annotations

from typing import Any

from recursa.agent.errors import InvalidInputError
from recursa.memory.records import MessageRecord

GOOD = 1
BAD = -1


def rating_value(good: bool | None) -> int | None:
    """The stored rating for good (True), bad (False) or cleared (None)."""
    if good is None:
        return None
    if not isinstance(good, bool):
        raise InvalidInputError(
            f"A rating is True (good), False (bad) or None (clear), not {good!r}."
        )
    return GOOD if good else BAD


def rate_reply(store: Any, message_id: int, good: bool | None) -> MessageRecord:
    """Mark a reply good (True), bad (False) or unrated (None); returns the updated message.

    Only assistant messages can be rated: they are what an export trains on.
    NotFoundError when the id does not exist.
    """
    value = rating_value(good)
    message = store.get_message(message_id)
    if message.role != "assistant":
        raise InvalidInputError(
            f"Message {message_id} is a {message.role} message; only assistant replies can be "
            "rated."
        )
    updated: MessageRecord = store.update_message(message_id, rating=value)
    return updated


def rating_label(rating: int | None) -> str:
    """'good', 'bad' or 'unrated' for a stored rating."""
    if rating is None:
        return "unrated"
    return "good" if rating > 0 else "bad"
