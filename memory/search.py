"""Full-text search over messages and summaries: FTS5 on SQLite, tsvector on PostgreSQL.

User text is never handed to the FTS query parser as is. It is split into
words here, each word is quoted as a literal term, and the terms are joined
with AND ("all") or OR ("any"), so quotes, `*`, `NEAR`, `-`, `:` and friends in
a query are just characters: no syntax error, no operator injection.
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
    clauses = []
    if conversation_id is not None:
        clauses.append(f"{alias}.conversation_id = :conversation_id")
    if through_seq is not None and alias == "m":
        clauses.append("m.seq <= :through_seq")
    if through_seq is not None and alias == "s":
        clauses.append("s.covers_through_seq <= :through_seq")
    return "".join(f" AND {clause}" for clause in clauses)


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
    """Ranked hits (best first) for `query`; [] when the query has no words."""
    terms = query_terms(query)
    if not terms or limit <= 0:
        return []
    params: dict[str, Any] = {
        "conversation_id": conversation_id,
        "through_seq": through_seq,
        "limit": limit,
    }
    if conn.dialect.name == "sqlite":
        params["q"] = fts5_query(terms, match)
        statements = [_SQLITE_MESSAGES.format(filters=_filters(conversation_id, through_seq, "m"))]
        if include_summaries:
            statements.append(
                _SQLITE_SUMMARIES.format(filters=_filters(conversation_id, through_seq, "s"))
            )
    else:
        params["q"] = tsquery(terms, match)
        params["hl"] = (
            f"StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, MaxWords=24, MinWords=8"
        )
        statements = [_PG_MESSAGES.format(filters=_filters(conversation_id, through_seq, "m"))]
        if include_summaries:
            statements.append(
                _PG_SUMMARIES.format(filters=_filters(conversation_id, through_seq, "s"))
            )
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
    # Both tables are scored by the same function for the same query, so their ranks interleave.
    hits.sort(key=lambda hit: (-hit.rank, hit.kind, hit.id))
    return hits[:limit]


# bm25() is lower for better matches; negating it makes "higher is better" as SearchHit says.
_SQLITE_MESSAGES = """
SELECT 'message' AS kind, m.id, m.conversation_id, m.seq, m.role, m.created_at,
       snippet(messages_fts, 0, '[', ']', '…', 16) AS snippet,
       -bm25(messages_fts) AS rank
FROM messages_fts JOIN messages AS m ON m.id = messages_fts.rowid
WHERE messages_fts MATCH :q{filters}
ORDER BY bm25(messages_fts), m.id
LIMIT :limit
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
# 200,000-character prefix included) so the planner uses the index.
_PG_MESSAGES = """
SELECT 'message' AS kind, m.id, m.conversation_id, m.seq, m.role, m.created_at,
       ts_headline('english', left(m.content, 20000), q, :hl) AS snippet,
       ts_rank_cd(to_tsvector('english'::regconfig, left(m.content, 200000)), q) AS rank
FROM messages AS m, to_tsquery('english', :q) AS q
WHERE to_tsvector('english'::regconfig, left(m.content, 200000)) @@ q{filters}
ORDER BY rank DESC, m.id
LIMIT :limit
"""

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
