"""The exception tree shared by every layer of recursa.

Every message names the fix. The CLI and the TUI translate these at the
boundary; anything that is not a `RecursaError` is a bug, not a user mistake.
"""

from __future__ import annotations


class RecursaError(Exception):
    """Base of every error recursa raises on purpose."""


class ConfigError(RecursaError):
    """A setting, path or environment variable is wrong."""


class InvalidInputError(RecursaError, ValueError):
    """Input from a user or a caller is malformed (empty text, bad metadata, ...)."""


class StoreError(RecursaError):
    """The database cannot be used as asked."""


class NotFoundError(StoreError, LookupError):
    """A conversation, message, summary or trace id does not exist in this database."""


class SchemaError(StoreError):
    """The database schema is older or newer than this recursa understands."""


class DatabaseUnavailableError(StoreError):
    """The database cannot be opened: unreachable server, unwritable or corrupt file."""


class DatabaseUrlError(DatabaseUnavailableError, ConfigError):
    """The database URL itself is wrong (unparsable, no database named, a bad port): a usage
    mistake, caught before anything connects."""


class CompactionConflict(StoreError):
    """A summary was not stored: another writer compacted first, or coverage did not advance."""
