"""recursa.memory: the SQL-persisted conversation memory and its token accounting.

This layer imports nothing else of recursa's. It provides the store (conversations,
messages, summaries, prompt traces, full-text search), the typed records the rest of
the code sees instead of ORM rows, token counting, and the locations of user files.

The names below are imported on first use (PEP 562), so `import recursa.memory`,
or importing a light submodule such as `recursa.memory.errors`, does not load
SQLAlchemy or Alembic.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recursa.memory.errors import (
        CompactionConflict,
        ConfigError,
        DatabaseUnavailableError,
        InvalidInputError,
        NotFoundError,
        RecursaError,
        SchemaError,
        StoreError,
    )
    from recursa.memory.records import (
        UNSET,
        ConversationExport,
        ConversationKind,
        ConversationRecord,
        MessageRecord,
        MessageRole,
        MessageStatus,
        NewMessage,
        NewTrace,
        SearchHit,
        SummaryRecord,
        TraceRecord,
        Unset,
    )
    from recursa.memory.schema import current_revision, head_revision, upgrade
    from recursa.memory.store import Store
    from recursa.memory.tokens import TiktokenCounter, TokenCounter

# Each exported name and the submodule that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        (
            "CompactionConflict",
            "ConfigError",
            "DatabaseUnavailableError",
            "InvalidInputError",
            "NotFoundError",
            "RecursaError",
            "SchemaError",
            "StoreError",
        ),
        "errors",
    ),
    **dict.fromkeys(
        (
            "UNSET",
            "ConversationExport",
            "ConversationKind",
            "ConversationRecord",
            "MessageRecord",
            "MessageRole",
            "MessageStatus",
            "NewMessage",
            "NewTrace",
            "SearchHit",
            "SummaryRecord",
            "TraceRecord",
            "Unset",
        ),
        "records",
    ),
    **dict.fromkeys(("current_revision", "head_revision", "upgrade"), "schema"),
    "Store": "store",
    **dict.fromkeys(("TiktokenCounter", "TokenCounter"), "tokens"),
}

__all__ = [
    "UNSET",
    "CompactionConflict",
    "ConfigError",
    "ConversationExport",
    "ConversationKind",
    "ConversationRecord",
    "DatabaseUnavailableError",
    "InvalidInputError",
    "MessageRecord",
    "MessageRole",
    "MessageStatus",
    "NewMessage",
    "NewTrace",
    "NotFoundError",
    "RecursaError",
    "SchemaError",
    "SearchHit",
    "Store",
    "StoreError",
    "SummaryRecord",
    "TiktokenCounter",
    "TokenCounter",
    "TraceRecord",
    "Unset",
    "current_revision",
    "head_revision",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    """Import an exported name's submodule on first use, then keep the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        # AttributeError (not ImportError) lets `from recursa.memory import engine`
        # fall through to importing the submodule.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
