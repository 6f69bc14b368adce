"""Recall's words and rules: a message's content words, and which stored messages may come back.

`recall_query` turns text into the words full-text search looks for (stop words
left out, each word once); `usable` says whether a stored message may appear in
a prompt at all. The rankings themselves are in `recursa.agent.recall.fusion`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from recursa.memory.records import MessageRecord

if TYPE_CHECKING:
    pass

# Words too common to say anything about relevance; searching "any" of them
# would rank every message alike.
STOPWORDS = frozenset(
    (  # noqa: SIM905
        "a about above after again all am an and any are as at be because been before being "
        "below between both but by can could did do does doing down during each few for from "
        "further had has have having he her here hers herself him himself his how i if in into "
        "is it its itself just me more most my myself no nor not now of off on once only or "
        "other our ours ourselves out over own same she should so some such than that the "
        "their theirs them themselves then there these they this those through to too under "
        "until up very was we were what when where which while who whom why will with would "
        "you your yours yourself yourselves tell remember know said say please ok okay yes"
    ).split()
)
_WORD = re.compile(r"\w+", re.UNICODE)


def recall_query(text: str) -> str:
    """The content words of `text`, deduplicated, as a search query."""
    words = [w.lower() for w in _WORD.findall(text)]
    seen: dict[str, None] = {}
    for w in words:
        if w not in STOPWORDS and (len(w) > 1 or w.isdigit()):
            seen.setdefault(w, None)
    return " ".join(seen)


def usable(record: MessageRecord) -> bool:
    """Whether a stored message may appear in a prompt (not a failed or replaced reply)."""
    return record.status != "error" and not record.superseded
