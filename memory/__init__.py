"""recursa.memory: the SQL-persisted conversation memory and its token accounting.

This layer imports nothing else of recursa's. It provides the store (conversations,
messages, summaries, prompt traces, full-text search), the typed records the rest of
the code sees instead of ORM rows, token counting, and the locations of user files.
"""

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
    ConversationExport,
    ConversationKind,
    ConversationRecord,
    MessageRecord,
    MessageRole,
    MessageStatus,
    SearchHit,
    SummaryRecord,
    TraceRecord,
)
from recursa.memory.schema import current_revision, head_revision, upgrade
from recursa.memory.store import UNSET, NewMessage, NewTrace, Store, Unset
from recursa.memory.tokens import TiktokenCounter, TokenCounter

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
