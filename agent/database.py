"""The conversation database's schema and location: upgrade it, read its revision, find it.

What the `recursa db` commands need, so that no surface reaches into
`recursa.memory` itself. Every function takes a URL (None: RECURSA_DB_URL, else
the SQLite file in the data directory); nothing is opened at import time.
"""

from __future__ import annotations

__all__ = [
    "current_revision",
    "default_url",
    "display_url",
    "head_revision",
    "is_known_revision",
    "location",
    "upgrade",
]


def default_url() -> str:
    """RECURSA_DB_URL when set, else the embedded SQLite database in the data directory."""
    from recursa.memory import locations

    return locations.default_db_url()


def display_url(url: str | None = None) -> str:
    """The URL as messages show it: password hidden, driver named.

    DatabaseUnavailableError (naming the accepted formats) for a URL that
    cannot be parsed.
    """
    from recursa.memory.engine import parse_url, safe_url

    return safe_url(parse_url(url or default_url()))


def location(url: str | None = None) -> str:
    """Where the database is: the SQLite file's path, or the server URL (password hidden)."""
    from recursa.memory.engine import parse_url, safe_url, sqlite_path

    parsed = parse_url(url or default_url())
    path = sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
    return str(path) if path is not None else safe_url(parsed)


def upgrade(url: str | None = None) -> str:
    """Create the database or bring its schema up to date; returns the revision (head)."""
    from recursa.memory.schema import upgrade as upgrade_schema

    return upgrade_schema(url or default_url())


def current_revision(url: str | None = None) -> str | None:
    """The database's schema revision, or None when it has none yet (nothing is created)."""
    from recursa.memory.schema import current_revision as revision_of

    return revision_of(url or default_url())


def head_revision() -> str:
    """The newest schema revision this copy of recursa knows."""
    from recursa.memory.schema import head_revision as head

    return head()


def is_known_revision(revision: str) -> bool:
    """Whether this copy of recursa knows `revision` (False: a newer recursa made it)."""
    from recursa.memory.schema import is_known_revision as known

    return known(revision)
