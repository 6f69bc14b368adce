"""Hybrid recall: full-text and semantic rankings fused, with each hit's question or answer.

Both rankings run over the same candidates (usable messages before the window)
and are fused by reciprocal rank: score = sum over rankings of 1 / (K + rank).
A message found by both ranks above one found by either alone. Each hit then
brings its partner when it has one (a reply its question, a question its
reply), because an answer without its question loses its meaning; the planner
fits partners only where room allows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple, Protocol

from recursa.agent.errors import RecursaError
from recursa.agent.planning.models import RecallSource
from recursa.agent.planning.plan import PromptCounter, RecallHit
from recursa.agent.recall.dates import NamedDay, day_spans, named_days
from recursa.agent.recall.excerpts import sentence_excerpt
from recursa.agent.recall.query import RecallQuery
from recursa.agent.recall.search import usable
from recursa.memory.records import MessageRecord

if TYPE_CHECKING:
    from recursa.memory.store import Store

__all__ = [
    "RRF_K",
    "Found",
    "RelevanceGate",
    "SemanticSearch",
    "find_hits",
    "fuse",
    "with_partners",
]

log = logging.getLogger(__name__)
# Who answers whom in an exchange: the partner of a message of this role has that role.
_PARTNER_ROLE = {"assistant": "user", "user": "assistant"}

# The usual reciprocal-rank constant: it damps the difference between the very
# first ranks, so agreement between the two rankings matters more than either's top.
RRF_K = 60
# The relevance gate (hybrid recall only): fusion ranks by position, so without a
# gate every turn would recall `max_hits` excerpts even when one is all that
# matters, and each new block is prompt tokens to prefill. With the question's
# cosine (all-MiniLM-L6-v2) to each candidate: nothing below the floor is related;
# a hit found only semantically must be within SEMANTIC_MARGIN of the best, one the
# words also found within FULL_TEXT_MARGIN (words catch names and days that the
# embedding ranks low). Measured on benchmarks/fidelity's questions: evidence sat
# within 0.10 of the best cosine for paraphrases and pronouns, up to 0.18 below
# it for a two-fact question's second fact (found by its words), while the tenth
# best of a plainly worded question sat 0.3 to 0.6 below its answer.
RELEVANCE_FLOOR = 0.2
SEMANTIC_MARGIN = 0.12
FULL_TEXT_MARGIN = 0.25
# A ranking's name, and the source it stands for: the "context" rankings search the
# message together with what it borrowed from the previous exchange.
_SOURCES: dict[str, RecallSource] = {
    "full-text": "full-text",
    "context": "full-text",
    "semantic": "semantic",
    "semantic-context": "semantic",
    "date": "date",
}


class SemanticSearch(Protocol):
    """What recall needs from a vector index (see `recursa.agent.recall.vectors`)."""

    def search(
        self,
        conversation_id: int,
        query: str,
        *,
        before_seq: int,
        limit: int,
        exclude: Collection[int] = (),
    ) -> list[tuple[int, float]]: ...

    def similarities(
        self, conversation_id: int, query: str, ids: Collection[int], *, before_seq: int
    ) -> dict[int, float]: ...


def fuse(
    rankings: Mapping[str, Sequence[int]], k: int = RRF_K
) -> list[tuple[int, RecallSource, float]]:
    """Message ids by fused reciprocal-rank score, best first, with the rankings that found them."""
    scores: dict[int, float] = {}
    found: dict[int, set[str]] = {}
    for name, ids in rankings.items():
        for rank, message_id in enumerate(dict.fromkeys(ids), start=1):
            scores[message_id] = scores.get(message_id, 0.0) + 1.0 / (k + rank)
            found.setdefault(message_id, set()).add(name)
    order = sorted(scores, key=lambda i: (-scores[i], i))
    out: list[tuple[int, RecallSource, float]] = []
    for message_id in order:
        names = {_SOURCES[name] for name in found[message_id]}
        source: RecallSource = "both" if len(names) > 1 else next(iter(names))
        out.append((message_id, source, scores[message_id]))
    return out


class Found(NamedTuple):
    """`find_hits`' answer: the hits, best first, and the gate that chose them (if any)."""

    hits: list[tuple[MessageRecord, RecallSource, float]]
    gate: RelevanceGate | None


def find_hits(
    store: Store,
    conversation_id: int,
    query: RecallQuery,
    *,
    before_seq: int,
    limit: int,
    exclude: Collection[int] = (),
    semantic: SemanticSearch | None = None,
) -> Found:
    """The `limit` best usable messages before `before_seq` for `query`, fused, best first.

    With semantic search, only those the relevance gate passes (returned with
    the hits, for their partners).
    """
    if limit <= 0 or before_seq <= 1:
        return Found([], None)
    wide = limit * 3
    rankings: dict[str, list[int]] = {}

    def full_text(words: str) -> list[int]:
        hits = store.search(
            words,
            conversation_id=conversation_id,
            through_seq=before_seq - 1,
            limit=wide + len(exclude),
            include_summaries=False,
            match="any",
        )
        return [
            h.id for h in hits if h.kind == "message" and h.seq < before_seq and h.id not in exclude
        ]

    if query.borrowed:
        # A message that leans on the previous exchange is searched only with what it
        # borrowed: on its own ("where did she move?") it would rank every move alike.
        rankings["context"] = full_text(f"{query.words} {query.borrowed}")
    elif query.words:
        rankings["full-text"] = full_text(query.words)
    cosines: dict[int, float] | None = None
    semantic_text = query.context_text if query.expanded else query.text
    if semantic is not None and query.text.strip():
        name = "semantic-context" if query.expanded else "semantic"
        try:
            found = semantic.search(
                conversation_id, semantic_text, before_seq=before_seq, limit=wide, exclude=exclude
            )
            rankings[name] = [message_id for message_id, _ in found]
            cosines = dict(found)
        except RecursaError as exc:
            # The embedder failed (a server down, say): this turn recalls without it.
            log.warning("semantic recall failed, using full-text only: %s", exc)
    days = named_days(query.text)
    if days:
        rankings["date"] = _on_named_days(store, conversation_id, days, before_seq, wide, exclude)
    fused = fuse(rankings)[:wide]
    gate: RelevanceGate | None = None
    if semantic is not None and cosines:
        gate = RelevanceGate(
            cosines,
            lambda ids: semantic.similarities(
                conversation_id, semantic_text, ids, before_seq=before_seq
            ),
        )
        gate.look_up([i for i, _, _ in fused])
        # A message on a day the question names is relevant whatever its wording.
        dated = set(rankings.get("date", ()))
        fused = [f for f in fused if f[0] in dated or gate.passes(f[0], f[1])]
    if not fused:
        return Found([], gate)
    by_id = {r.id: r for r in store.messages_by_ids([i for i, _, _ in fused])}
    out: list[tuple[MessageRecord, RecallSource, float]] = []
    for message_id, source, score in fused:
        record = by_id.get(message_id)
        if record is None or not usable(record) or record.seq >= before_seq:
            continue
        out.append((record, source, score))
        if len(out) >= limit:
            break
    return Found(out, gate)


class RelevanceGate:
    """Which candidates are close enough to the question to show (see RELEVANCE_FLOOR).

    Built from the semantic ranking's cosines; those of other candidates (found
    by their words, or a hit's reply) are looked up once. When a lookup fails,
    the gate lets everything through: it only ever removes.
    """

    def __init__(
        self,
        cosines: Mapping[int, float],
        lookup: Callable[[Collection[int]], Mapping[int, float]],
    ) -> None:
        self.best = max(cosines.values())
        self._known = dict(cosines)
        self._lookup = lookup
        self._failed = False

    def passes(self, message_id: int, source: RecallSource) -> bool:
        """Whether the message (already looked up with `look_up`) may be shown."""
        cosine = self._known.get(message_id)
        if self._failed or cosine is None:
            # A message without a vector yet: nothing says it is unrelated.
            return True
        margin = SEMANTIC_MARGIN if source == "semantic" else FULL_TEXT_MARGIN
        return cosine >= max(RELEVANCE_FLOOR, self.best - margin)

    def look_up(self, ids: Collection[int]) -> None:
        """Fetch the cosines of `ids` not known yet, in one call."""
        missing = [i for i in ids if i not in self._known]
        if not missing or self._failed:
            return
        try:
            self._known.update(self._lookup(missing))
        except RecursaError as exc:
            log.warning("recall relevance check failed, keeping every hit: %s", exc)
            self._failed = True


def _on_named_days(
    store: Store,
    conversation_id: int,
    days: Sequence[NamedDay],
    before_seq: int,
    limit: int,
    exclude: Collection[int],
) -> list[int]:
    """Messages from the days the question names: what the user said first, then replies."""
    first = store.messages(conversation_id, limit=1)
    last = store.messages(conversation_id, limit=1, newest_first=True)
    if not first or not last:
        return []
    years = range(first[0].created_at.year, last[0].created_at.year + 1)
    spans = day_spans(days, years)
    found = store.messages_between(conversation_id, spans, before_seq=before_seq, limit=limit)
    usable_ids = [r for r in found if usable(r) and r.id not in exclude]
    return [r.id for r in sorted(usable_ids, key=lambda r: (r.role != "user", r.seq))]


def with_partners(
    store: Store,
    counter: PromptCounter,
    found: Sequence[tuple[MessageRecord, RecallSource, float]],
    *,
    terms: Sequence[str],
    max_excerpt_tokens: int,
    before_seq: int,
    exclude: Collection[int] = (),
    gate: RelevanceGate | None = None,
) -> list[RecallHit]:
    """The hits as excerpts, each followed by its partner (question or reply) when it has one.

    A partner is the message next to the hit in the same exchange: the user
    message before an assistant reply, or the reply after a user message. It
    must be usable, before `before_seq`, and not excluded or already a hit. A
    reply's question always comes (the reply means little without it); a
    message's reply only when `gate` finds it relevant too, since most replies
    to a statement are acknowledgements, while a reply that answers the
    question is as close to it as a hit found by its words.
    """
    hit_ids = {r.id for r, _, _ in found}
    taken: set[int] = set(hit_ids) | set(exclude)
    partners = _partners(store, found)
    if gate is not None:
        gate.look_up([p.id for p in partners.values() if p.role == "assistant"])
    out: list[RecallHit] = []
    for record, source, score in found:
        out.append(_hit(counter, record, source, score, terms, max_excerpt_tokens))
        partner = partners.get(record.id)
        if (
            partner is not None
            and partner.id not in taken
            and partner.seq < before_seq
            and usable(partner)
            and (gate is None or partner.role == "user" or gate.passes(partner.id, "pair"))
        ):
            taken.add(partner.id)
            pair = _hit(counter, partner, "pair", score, terms, max_excerpt_tokens)
            out.append(replace(pair, partner_of=record.id))
    return out


def _hit(
    counter: PromptCounter,
    record: MessageRecord,
    source: RecallSource,
    score: float,
    terms: Sequence[str],
    max_tokens: int,
) -> RecallHit:
    text = sentence_excerpt(counter, record.content, terms, max_tokens)
    return RecallHit(record=record, source=source, score=score, text=text)


def _partners(
    store: Store, found: Sequence[tuple[MessageRecord, RecallSource, float]]
) -> dict[int, MessageRecord]:
    """Each hit's partner by hit id, read in one query: a reply's question, a question's reply."""
    if not found:
        return {}
    wanted = {
        r.id: (r.seq - 1 if r.role == "assistant" else r.seq + 1, _PARTNER_ROLE[r.role])
        for r, _, _ in found
        if r.role in _PARTNER_ROLE and not (r.role == "assistant" and r.seq == 1)
    }
    near = store.messages_at(found[0][0].conversation_id, [seq for seq, _ in wanted.values()])
    by_seq = {r.seq: r for r in near}
    out: dict[int, MessageRecord] = {}
    for hit_id, (seq, role) in wanted.items():
        partner = by_seq.get(seq)
        if partner is not None and partner.role == role:
            out[hit_id] = partner
    return out
