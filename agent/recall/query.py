"""What recall searches for: the new message, expanded when it leans on the previous exchange.

"When did she go there?" names nothing a search can find: its subject is in the
exchange before it. A short or referring message is expanded with the content
words of the previous exchange, so the question carries its subject; a message
that names its own subject is searched as it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from recursa.agent.recall.search import recall_query
from recursa.memory.records import MessageRecord

__all__ = ["RecallQuery", "build_query"]

# Words that point back at something named earlier.
_REFERRING = frozenset(
    (  # noqa: SIM905
        "he she it they him her them his hers its their theirs there that this those these "
        "then same one ones"
    ).split()
)
_WORD = re.compile(r"\w+", re.UNICODE)
# A message with at most this many content words is too thin to search on its own.
_SHORT = 3
# At most this many words are borrowed from the previous exchange.
_BORROWED = 12


@dataclass(frozen=True)
class RecallQuery:
    """The text to search for (full-text words and the semantic query) and how it was made."""

    words: str  # content words for full-text search, space-separated
    text: str  # the text whose meaning is searched (the message, plus borrowed context)
    expanded: bool = False

    @property
    def terms(self) -> list[str]:
        return self.words.split()


def build_query(text: str, previous: Sequence[MessageRecord] = ()) -> RecallQuery:
    """The recall query for `text`; `previous` is the exchange before it, oldest first."""
    words = recall_query(text)
    tokens = {w.lower() for w in _WORD.findall(text)}
    thin = len(words.split()) <= _SHORT or bool(tokens & _REFERRING)
    context = [m.content for m in previous if m.content.strip()]
    if not thin or not context:
        return RecallQuery(words=words, text=text)
    own = set(words.split())
    borrowed = [w for w in recall_query(" ".join(context)).split() if w not in own]
    borrowed = borrowed[:_BORROWED]
    if not borrowed:
        return RecallQuery(words=words, text=text)
    return RecallQuery(
        words=" ".join([*words.split(), *borrowed]),
        text=f"{' '.join(borrowed)}. {text}",
        expanded=True,
    )
