"""Rating replies good or bad, stored with the message, so exports can keep only approved ones."""

from __future__ import annotations

from typing import Any

from recursa.memory.errors import InvalidInputError
from recursa.memory.records import MessageRecord

GOOD = 1
BAD = -1


def rating_value(good: bool | None) -> int | None:
    """The stored rating for good (True), bad (False) or cleared (None)."""
    if good is None:
        return None
    return GOOD if good else BAD


def rate_reply(store: Any, message_id: int, good: bool | None) -> MessageRecord:
    """Mark a reply good (True), bad (False) or unrated (None); returns the updated message.

    Only assistant messages can be rated: they are what an export trains on.
    NotFoundError when the id does not exist.
    """
    message = store.get_message(message_id)
    if message.role != "assistant":
        raise InvalidInputError(
            f"Message {message_id} is a {message.role} message; only assistant replies can be "
            "rated."
        )
    updated: MessageRecord = store.update_message(message_id, rating=rating_value(good))
    return updated


def rating_label(rating: int | None) -> str:
    """'good', 'bad' or 'unrated' for a stored rating."""
    if rating is None:
        return "unrated"
    return "good" if rating > 0 else "bad"
