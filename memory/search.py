"""Full-text search over messages and summaries: FTS5 on SQLite, tsvector on PostgreSQL.

User text is never handed to the FTS query parser as is. It is split into
words here, each word is quoted as a literal term, and the terms are joined
with AND ("all") or OR ("any"), so quotes, `*`, `NEAR`, `-`, `:` and friends in
a query are just characters: no syntax error, no operator injection.

"any" (recall) keeps its cost independent of the history's length: a word
found in more than `COMMON_TERM_CAP` of the searched messages says little about
relevance (the way IDF weighs stop words down), and ranking all its matches
would cost time that grows with every turn. So each word's frequency is first
probed with a count that stops at the cap, too-common words are left out of the
ranking, and when every word is too common only the most recent matches are
ranked. See `search`.

The trade-off: for words that common, an older message that matches them
better is not a candidate; recency decides, as it would for a reader skimming
back. The rows read are bounded on both databases; what remains proportional
to history is a word's index entries (an FTS5 doclist or a GIN posting list),
walked at about 0.1 microseconds each, well within the per-turn budget at
100,000 messages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from recursa.memory.records import SearchHit
from sqlalchemy import Connection, text

MatchMode = Literal["all", "any"]

# Marks around matched words in snippets (the TUI may restyle them).
HIGHLIGHT_START = "["
HIGHLIGHT_END = "]"
# Words beyond this are ignored: a pasted essay is not a meaningful query.
MAX_TERMS = 32
# "any" search: a word matching more messages than this (within the searched
# conversation and range) is too common to rank by.
COMMON_TERM_CAP = 100
# "any" search, every word too common: how many of the most recent matches are
# ranked (at least the number of hits asked for). Words that common say little
# about relevance, so recency chooses the candidates and ranking stays cheap.
RECENT_MATCHES = 64

# PostgreSQL, every word common: the first slice of the conversation (in
# messages, newest first) searched for the most recent matches, and how much
# longer each next slice is (see `_pg_recent_ids`).
RECENT_SLICE = 2048
RECENT_SLICE_GROWTH = 4

_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(query: str) -> list[str]:
    """The words of a user's query, deduplicated, in order; punctuation dropped."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.replace("\x00", " ")):
        seen.setdefault(word.lower(), None)
    return list(seen)[:MAX_TERMS]


def fts5_query(terms: Sequence[str], match: MatchMode) -> str:
    """An FTS5 MATCH expression in which every term is a quoted string literal."""
    quoted = ['"' + term.replace('"', '""') + '"' for term in terms]
    return (" AND " if match == "all" else " OR ").join(quoted)


def tsquery(terms: Sequence[str], match: MatchMode) -> str:
    """A to_tsquery expression in which every term is a quoted lexeme."""
    quoted = ["'" + term.replace("'", "''").replace("\\", "\\\\") + "'" for term in terms]
    return (" & " if match == "all" else " | ").join(quoted)


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite returns raw text from a text() query
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _filters(conversation_id: int | None, through_seq: int | None, alias: str) -> str:
    """AND clauses restricting `alias` (a messages row; a summaries row when "s")."""
    clauses = []
    if conversation_id is not None:
        clauses.append(f"{alias}.conversation_id = :conversation_id")
    if through_seq is not None:
        column = "covers_through_seq" if alias == "s" else "seq"
        clauses.append(f"{alias}.{column} <= :through_seq")
    return "".join(f" AND {clause}" for clause in clauses)


def _searched_span(conn: Connection, conversation_id: int | None, through_seq: int | None) -> int:
    """How many messages a search may match at most (seq runs 1..last_seq in a conversation).

    A range no longer than the cap cannot hold a too-common word, so it skips the
    probe; on PostgreSQL its messages are also parsed directly instead of going
    through the GIN index (see `_PG_SHORT_RANGE_MESSAGES`).
    """
    if conversation_id is None:
        return COMMON_TERM_CAP + 1  # the whole database: always probe
    last = conn.execute(
        text("SELECT last_seq FROM conversations WHERE id = :id"), {"id": conversation_id}
    ).scalar()
    span = int(last or 0)
    return span if through_seq is None else min(span, max(through_seq, 0))


def _message_frequencies(
    conn: Connection, terms: Sequence[str], filters: str, params: dict[str, Any]
) -> dict[str, int]:
    """How many searched messages contain each term, counted no further than the cap + 1.

    Each count is a LIMITed scan of that term's own matches, so it stops early
    for a common term: bounded work whatever the history's length.
    """
    probe = _SQLITE_PROBE if conn.dialect.name == "sqlite" else _PG_PROBE
    literal = fts5_query if conn.dialect.name == "sqlite" else tsquery
    values = dict(params, cap=COMMON_TERM_CAP + 1)
    parts = []
    for i, term in enumerate(terms):
        values[f"t{i}"] = literal([term], "any")
        # One statement for all the terms: one round trip.
        parts.append(f"({probe.format(term=f':t{i}', filters=filters)}) AS f{i}")
    row = conn.execute(text("SELECT " + ", ".join(parts)), values).one()
    return {term: int(value) for term, value in zip(terms, row, strict=True)}


def _sqlite_recent_statement(terms: Sequence[str], filters: str) -> tuple[str, dict[str, Any]]:
    """SQLite, every word common: the :limit best of the :pool most recent matches.

    bm25() is not used here: it counts each word's matches over the whole index
    to weigh it, which is the cost that grows with history (`ORDER BY rank
    LIMIT` still scores every match: 7 ms for three common words at 100,000
    messages, against 0.2 ms to walk to their 64 newest matches). Words this
    common weigh about the same anyway, so a match's rank is the share of the
    query's words it contains (newest first among equals). Each word's matches
    are read from the oldest recent match on (FTS5 seeks to that rowid).
    """
    values: dict[str, Any] = {"terms": len(terms)}
    parts = []
    for i, term in enumerate(terms):
        values[f"t{i}"] = fts5_query([term], "any")
        parts.append(
            f"SELECT rowid AS id FROM messages_fts WHERE messages_fts MATCH :t{i} "
            "AND rowid >= (SELECT min(id) FROM recent)"
        )
    statement = _SQLITE_RECENT.format(filters=filters, per_term=" UNION ALL ".join(parts))
    return statement, values


def _pg_planner_has_statistics(conn: Connection) -> bool:
    """Whether PostgreSQL has analyzed `messages` (autovacuum does, soon after a big import)."""
    analyzed = conn.execute(
        text("SELECT reltuples >= 0 FROM pg_class WHERE oid = CAST('messages' AS regclass)")
    ).scalar()
    return bool(analyzed)


def _pg_recent_ids(conn: Connection, params: dict[str, Any], newest_seq: int) -> list[int]:
    """PostgreSQL, one conversation, every word common: the ids of its :pool newest matches.

    The GIN index has no order, so keeping the newest of all matches means
    reading every one of them: time that grows with the history. Instead the
    searched range is read in slices of seq, newest first, each
    `RECENT_SLICE_GROWTH` times longer than the one before, until the pool is
    full. A slice costs its own matches (plus a walk over the word's index
    entries, far cheaper per match than reading rows): a common word dense in
    recent turns fills the pool from the first slice, a sparser one needs
    longer slices but has fewer matches in each. The result is the same as
    sorting every match: slices are disjoint and read newest first.
    """
    ids: list[int] = []
    high, length = newest_seq, RECENT_SLICE
    while high > 0 and len(ids) < params["pool"]:
        low = max(high - length, 0)
        slice_params = dict(params, low=low, high=high, need=params["pool"] - len(ids))
        ids += [int(i) for i in conn.execute(text(_PG_RECENT_SLICE), slice_params).scalars()]
        high, length = low, length * RECENT_SLICE_GROWTH
    return ids


def search(
    conn: Connection,
    query: str,
    *,
    conversation_id: int | None,
    through_seq: int | None,
    limit: int,
    include_summaries: bool,
    match: MatchMode,
) -> list[SearchHit]:
    """Ranked hits (best first) for `query`; [] when the query has no words.

    "all": every word must appear; all such messages are ranked.
    "any": in a searched range longer than `COMMON_TERM_CAP` messages, each
    word's frequency there is probed first (counting stops past the cap).
    Words found in 1..cap messages are the informative ones: only they are
    matched and ranked, so a rare word is found however common the other words
    of the query are, and at most cap rows per word are ranked. When no word is
    informative but some are too common, only the `RECENT_MATCHES` most recent
    matches are ranked: on SQLite by the share of the query's words each holds
    (see `_sqlite_recent_statement`), on PostgreSQL by ts_rank_cd as usual.
    Summaries, few by construction, are matched with the same words.

    The bound is on the rows read and ranked (scored, snippeted, sorted).
    Finding the most recent matches is a walk down the index on SQLite (FTS5
    rowids, newest first, stopping after them); on PostgreSQL, whose GIN index
    has no order, the conversation is read in growing slices of seq, newest
    first, each slice's rows found by ANDing the GIN bitmap with the
    (conversation_id, seq) index (see `_pg_recent_ids`). Two PostgreSQL cases
    read every match's row instead (not its text): a search over every
    conversation, and a `messages` table never analyzed yet (the planner would
    misjudge the slices; autovacuum analyzes soon after an import). The
    full-text index spans every conversation, so a word that is common in
    *other* conversations still costs a walk over its entries there (as any
    full-text query does).
    """
    terms = query_terms(query)
    if not terms or limit <= 0:
        return []
    sqlite = conn.dialect.name == "sqlite"
    params: dict[str, Any] = {
        "conversation_id": conversation_id,
        "through_seq": through_seq,
        "limit": limit,
        "pool": max(RECENT_MATCHES, limit),
    }
    message_filters = _filters(conversation_id, through_seq, "m")
    recent_only = no_message_match = False
    span = _searched_span(conn, conversation_id, through_seq)
    short_range = span <= COMMON_TERM_CAP
    if match == "any" and not short_range:
        frequency = _message_frequencies(conn, terms, message_filters, params)
        informative = [t for t in terms if 0 < frequency[t] <= COMMON_TERM_CAP]
        common = [t for t in terms if frequency[t] > COMMON_TERM_CAP]
        recent_only = not informative and bool(common)
        no_message_match = not informative and not common
        terms = informative or common or terms
    summary_filters = _filters(conversation_id, through_seq, "s")
    if sqlite:
        params["q"] = fts5_query(terms, match)
        if recent_only:
            statement, values = _sqlite_recent_statement(terms, message_filters)
            params.update(values)
            statements = [statement]
        else:
            statements = [_SQLITE_MESSAGES.format(filters=message_filters)]
        if include_summaries:
            statements.append(_SQLITE_SUMMARIES.format(filters=summary_filters))
    else:
        params["q"] = tsquery(terms, match)
        params["hl"] = (
            f"StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, MaxWords=24, MinWords=8"
        )
        if recent_only and conversation_id is not None and _pg_planner_has_statistics(conn):
            params["ids"] = _pg_recent_ids(conn, params, span)
            message_sql = _PG_RANKED_IDS
        elif recent_only:
            message_sql = _PG_RECENT_MESSAGES
        else:
            message_sql = _PG_SHORT_RANGE_MESSAGES if short_range else _PG_MESSAGES
        statements = [message_sql.format(filters=message_filters)]
        if include_summaries:
            statements.append(_PG_SUMMARIES.format(filters=summary_filters))
    if no_message_match:  # the probe found none of the words in the searched messages
        statements = statements[1:]
    hits: list[SearchHit] = []
    for statement in statements:
        for row in conn.execute(text(statement), params):
            hits.append(
                SearchHit(
                    kind=row.kind,
                    id=int(row.id),
                    conversation_id=int(row.conversation_id),
                    seq=int(row.seq),
                    role=row.role,
                    snippet=row.snippet or "",
                    rank=float(row.rank),
                    created_at=_utc(row.created_at),
                )
            )
    # Both tables are scored by the same function for the same words, so their ranks interleave.
    hits.sort(key=lambda hit: (-hit.rank, hit.kind, hit.id))
    return hits[:limit]


# bm25() is lower for better matches; negating it makes "higher is better" as SearchHit says.
# CROSS JOIN makes the full-text index the outer loop: without it SQLite may walk
# the conversation's whole history by (conversation_id, seq) and probe the index
# once per message, which for a LIMITed query on a rare word costs seconds.
_SQLITE_MESSAGES = """
SELECT 'message' AS kind, m.id, m.conversation_id, m.seq, m.role, m.created_at,
       snippet(messages_fts, 0, '[', ']', '…', 16) AS snippet,
       -bm25(messages_fts) AS rank
FROM messages_fts CROSS JOIN messages AS m ON m.id = messages_fts.rowid
WHERE messages_fts MATCH :q{filters}
ORDER BY bm25(messages_fts), m.id
LIMIT :limit
"""

# A term's matches among the searched messages, counted up to :cap (the probe).
_SQLITE_PROBE = """
SELECT count(*) FROM (
    SELECT 1 FROM messages_fts CROSS JOIN messages AS m ON m.id = messages_fts.rowid
    WHERE messages_fts MATCH {term}{filters}
    LIMIT :cap
)"""

# `recent`: FTS5 walks the matches newest first (descending rowid), stopping after
# :pool; `per_term`: each word's matches from the oldest of those on; `best`: the
# :limit recent matches with the most words. Only those get a snippet.
_SQLITE_RECENT = """
WITH recent AS MATERIALIZED (
    SELECT m.id FROM messages_fts CROSS JOIN messages AS m ON m.id = messages_fts.rowid
    WHERE messages_fts MATCH :q{filters}
    ORDER BY messages_fts.rowid DESC
    LIMIT :pool
), per_term AS MATERIALIZED (
    {per_term}
), best AS MATERIALIZED (
    SELECT recent.id, count(per_term.id) AS words
    FROM recent LEFT JOIN per_term ON per_term.id = recent.id
    GROUP BY recent.id
    ORDER BY words DESC, recent.id DESC
    LIMIT :limit
)
SELECT 'message' AS kind, m.id, m.conversation_id, m.seq, m.role, m.created_at,
       snippet(messages_fts, 0, '[', ']', '…', 16) AS snippet,
       best.words * 1.0 / :terms AS rank
FROM messages_fts CROSS JOIN messages AS m ON m.id = messages_fts.rowid
     CROSS JOIN best ON best.id = m.id
WHERE messages_fts MATCH :q AND messages_fts.rowid >= (SELECT min(id) FROM recent)
"""

_SQLITE_SUMMARIES = """
SELECT 'summary' AS kind, s.id, s.conversation_id, s.covers_through_seq AS seq,
       'summary' AS role, s.created_at,
       snippet(summaries_fts, 0, '[', ']', '…', 16) AS snippet,
       -bm25(summaries_fts) AS rank
FROM summaries_fts JOIN summaries AS s ON s.id = summaries_fts.rowid
WHERE summaries_fts MATCH :q{filters}
ORDER BY bm25(summaries_fts), s.id
LIMIT :limit
"""

# The tsvector expression is written exactly as in migration 0001's GIN index (its
# 200,000-character prefix included) so the planner can use the index. The
# MATERIALIZED CTE makes it the only way in: given the conversation filter too,
# and no statistics yet (a fresh import), the planner may walk the conversation
# by (conversation_id, seq) and parse every message, seconds at 100,000. The CTE
# carries the columns the result needs: joining back to messages by id let the
# planner pick a merge join that walks the whole primary key (73,000 rows read to
# rank 3 hits at 100,000 messages).
_PG_MESSAGES = """
WITH hits AS MATERIALIZED (
    SELECT m.id, m.conversation_id, m.seq, m.role, m.created_at, m.content
    FROM messages AS m
    WHERE to_tsvector('english'::regconfig, left(m.content, 200000))
          @@ to_tsquery('english', :q)
)
SELECT 'message' AS kind, m.id, m.conversation_id, m.seq, m.role, m.created_at,
       ts_headline('english', left(m.content, 20000), q, :hl) AS snippet,
       ts_rank_cd(to_tsvector('english'::regconfig, left(m.content, 200000)), q) AS rank
FROM hits AS m, to_tsquery('english', :q) AS q
WHERE TRUE{filters}
ORDER BY rank DESC, m.id
LIMIT :limit
"""

# A conversation range of at most COMMON_TERM_CAP messages: parsing each of them
# is cheap and bounded, whereas the GIN index would return the words' matches in
# every conversation (thousands, for a common word in a long one).
_PG_SHORT_RANGE_MESSAGES = """
WITH searched AS MATERIALIZED (
    SELECT m.id FROM messages AS m WHERE TRUE{filters}
)
SELECT 'message' AS kind, m.id, m.conversation_id, m.seq, m.role, m.created_at,
       ts_headline('english', left(m.content, 20000), q, :hl) AS snippet,
       ts_rank_cd(to_tsvector('english'::regconfig, left(m.content, 200000)), q) AS rank
FROM searched JOIN messages AS m ON m.id = searched.id, to_tsquery('english', :q) AS q
WHERE to_tsvector('english'::regconfig, left(m.content, 200000)) @@ q
ORDER BY rank DESC, m.id
LIMIT :limit
"""

# One slice of a conversation (low < seq <= high): its matches, newest first. With
# both conditions in a MATERIALIZED CTE and no LIMIT, the planner ANDs the GIN
# bitmap with the (conversation_id, seq) range bitmap, so only the slice's
# matching rows are read. A LIMIT inside would make it walk the slice newest
# first and parse each message until :need match, far slower; so would the
# planner's defaults before `messages` is first analyzed (it then takes the
# range for a few rows), which is why that case keeps the GIN-only statement.
_PG_RECENT_SLICE = """
WITH slice AS MATERIALIZED (
    SELECT m.id, m.seq FROM messages AS m
    WHERE m.conversation_id = :conversation_id AND m.seq > :low AND m.seq <= :high
      AND to_tsvector('english'::regconfig, left(m.content, 200000))
          @@ to_tsquery('english', :q)
)
SELECT id FROM slice ORDER BY seq DESC LIMIT :need
"""

# The matches chosen by `_pg_recent_ids`, ranked.
_PG_RANKED_IDS = """
SELECT 'message' AS kind, m.id, m.conversation_id, m.seq, m.role, m.created_at,
       ts_headline('english', left(m.content, 20000), q, :hl) AS snippet,
       ts_rank_cd(to_tsvector('english'::regconfig, left(m.content, 200000)), q) AS rank
FROM messages AS m, to_tsquery('english', :q) AS q
WHERE m.id = ANY(CAST(:ids AS bigint[]))
ORDER BY rank DESC, m.id
LIMIT :limit
"""

# Every word of the query is common, and the search spans every conversation (no
# caller of recall does that) or `messages` has never been analyzed (see
# `_PG_RECENT_SLICE`): only the :pool most recent matches are ranked, but finding
# them reads every match's row (not its text), a cost that grows with history.
# The MATERIALIZED CTE keeps the GIN index the way in (each match's row is read
# once, the text is not parsed); otherwise the planner may walk the conversation
# newest first and parse every message until :pool match, far slower.
_PG_RECENT_MESSAGES = """
WITH hits AS MATERIALIZED (
    SELECT m.id, m.conversation_id, m.seq FROM messages AS m
    WHERE to_tsvector('english'::regconfig, left(m.content, 200000))
          @@ to_tsquery('english', :q)
), recent AS (
    SELECT m.id FROM hits AS m WHERE TRUE{filters} ORDER BY m.id DESC LIMIT :pool
)
SELECT 'message' AS kind, m.id, m.conversation_id, m.seq, m.role, m.created_at,
       ts_headline('english', left(m.content, 20000), q, :hl) AS snippet,
       ts_rank_cd(to_tsvector('english'::regconfig, left(m.content, 200000)), q) AS rank
FROM recent JOIN messages AS m ON m.id = recent.id, to_tsquery('english', :q) AS q
ORDER BY rank DESC, m.id
LIMIT :limit
"""

# The same shape as above: the CTE is read lazily, so the count stops after :cap
# matches in the searched range, and it is fed by the GIN index, never by parsing
# each message of the conversation (which the planner would pick for a LIMIT).
_PG_PROBE = """
WITH hits AS MATERIALIZED (
    SELECT m.conversation_id, m.seq FROM messages AS m
    WHERE to_tsvector('english'::regconfig, left(m.content, 200000))
          @@ to_tsquery('english', {term})
)
SELECT count(*) FROM (SELECT 1 FROM hits AS m WHERE TRUE{filters} LIMIT :cap) AS probe"""

_PG_SUMMARIES = """
SELECT 'summary' AS kind, s.id, s.conversation_id, s.covers_through_seq AS seq,
       'summary' AS role, s.created_at,
       ts_headline('english', left(s.content, 20000), q, :hl) AS snippet,
       ts_rank_cd(to_tsvector('english'::regconfig, left(s.content, 200000)), q) AS rank
FROM summaries AS s, to_tsquery('english', :q) AS q
WHERE to_tsvector('english'::regconfig, left(s.content, 200000)) @@ q{filters}
ORDER BY rank DESC, s.id
LIMIT :limit
"""
