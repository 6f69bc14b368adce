"""What recall searches for: the new message, expanded when it leans on the previous exchange.

"When did she go there?" names nothing a search can find: its subject is in the
exchange before it. A short or referring message borrows the content words of
the previous exchange, so the question carries its subject; a message that
names its own subject is searched as it is. The borrowed words are searched as
a ranking of their own beside the message's words, so they lead recall to the
subject without outweighing what the message itself asks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from recursa.agent.recall.dates import named_days, without_dates
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
# A message with at most this many content words names no subject of its own.
_SHORT = 1
# At most this many words are borrowed from the previous exchange.
_BORROWED = 12


@dataclass(frozen=True)
class RecallQuery:
    """What recall searches for, and how it was made.

    `words` are the message's own content words (dates left out: they are
    searched as days) and `text` the message itself; a message that leans on
    the previous exchange also carries that exchange's content words
    (`borrowed`), searched beside its own.
    """

    words: str
    text: str
    borrowed: str = ""
    context: str = ""  # the previous exchange's text, when the message leans on it

    @property
    def expanded(self) -> bool:
        return bool(self.borrowed)

    @property
    def context_text(self) -> str:
        """The message after the exchange it leans on: its meaning with its subject."""
        return f"{self.context} {self.text}" if self.context else self.text

    @property
    def terms(self) -> list[str]:
        """Every word an excerpt is cut for: the message's own, then the borrowed ones."""
        return [*self.words.split(), *self.borrowed.split()]


def build_query(text: str, previous: Sequence[MessageRecord] = ()) -> RecallQuery:
    """The recall query for `text`; `previous` is the exchange before it, oldest first."""
    words = recall_query(without_dates(text))
    tokens = {w.lower() for w in _WORD.findall(text)}
    # A question about a day is answered by that day, not by the exchange before it.
    bare = len(words.split()) <= _SHORT and not named_days(text)
    leaning = bare or bool(tokens & _REFERRING)
    context = [m.content for m in previous if m.content.strip()]
    if not leaning or not context:
        return RecallQuery(words=words, text=text)
    own = set(words.split())
    borrowed = [w for w in recall_query(" ".join(context)).split() if w not in own]
    return RecallQuery(
        words=words, text=text, borrowed=" ".join(borrowed[:_BORROWED]), context=" ".join(context)
    )
