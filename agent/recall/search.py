"""Recall: the archived turns most relevant to a new message, found with full-text search.

Archived means covered by the latest summary (seq <= its coverage), so a
recalled message is never also in the verbatim window. The store's search ranks
hits; the planner then fits the best ones into the recall share and shows them
in chronological order with their dates.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from recursa.memory.records import MessageRecord

if TYPE_CHECKING:
    from recursa.memory.store import Store

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


def recall_candidates(
    store: Store,
    conversation_id: int,
    text: str,
    *,
    through_seq: int,
    limit: int,
    exclude: set[int] | None = None,
) -> list[MessageRecord]:
    """Archived messages (seq <= through_seq) relevant to `text`, best first."""
    if through_seq <= 0 or limit <= 0:
        return []
    query = recall_query(text)
    if not query:
        return []
    hits = store.search(
        query,
        conversation_id=conversation_id,
        through_seq=through_seq,
        limit=limit * 3,
        include_summaries=False,
        match="any",
    )
    ids = [h.id for h in hits if h.kind == "message" and h.seq <= through_seq]
    ids = [i for i in dict.fromkeys(ids) if not exclude or i not in exclude]
    if not ids:
        return []
    by_id = {r.id: r for r in store.messages_by_ids(ids)}
    ranked = [by_id[i] for i in ids if i in by_id and usable(by_id[i])]
    return ranked[:limit]
