"""The store's ORM rows: conversations, messages, token counts, summaries, traces, embeddings.

Every ORM class is named `...Row`, so it is never confused with the record the
rest of recursa sees. These rows never leave `recursa.memory`: each record in
`records.py` is built from its row by the record's own `from_row`. The schema
itself is made by the Alembic migrations in `recursa.migrations` (never by
`create_all`), and a test checks that the migrations and these models agree.
The full-text index objects (FTS5 tables and triggers, the PostgreSQL GIN
index) live only in the migrations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Explicit names let Alembic create, compare and drop constraints reliably on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite integer primary keys must be INTEGER to alias the rowid (which FTS5's
# content_rowid relies on); PostgreSQL gets 64-bit ids for large deployments.
Id = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp that reads back exactly as it was written.

    SQLite has no timezone type, so values are stored as naive UTC there and
    marked UTC again on the way out; PostgreSQL's timestamptz keeps the instant
    and is converted back to UTC. Naive datetimes given by callers are taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the naming convention Alembic relies on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class ConversationRow(Base):
    """A conversation: its settings and the counter that numbers its messages."""

    __tablename__ = "conversations"
    __table_args__ = (
        CheckConstraint("kind IN ('chat', 'composition')", name="kind"),
        Index(None, "updated_at"),
        Index(None, "owner", "history_key"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    title: Mapped[str | None] = mapped_column(Text)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(20), default="chat")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The last sequence number handed out: appends bump it with one locked
    # UPDATE ... RETURNING, which is what keeps seq gap- and duplicate-free.
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    # The HTTP service's columns (migration 0005). `owner` is the digest of the API
    # key the conversation was created through (None: no key, e.g. the CLI);
    # `history_key` fingerprints the history its client re-sends; the lease lets one
    # process at a time run a turn in it.
    owner: Mapped[str | None] = mapped_column(String(100))
    history_key: Mapped[str | None] = mapped_column(String(64))
    lease_holder: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column()

    messages: Mapped[list[MessageRow]] = relationship(back_populates="conversation", lazy="raise")


class MessageRow(Base):
    """One message; `seq` numbers it within its conversation, without gaps."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        CheckConstraint("role IN ('system', 'user', 'assistant')", name="role"),
        CheckConstraint("status IN ('complete', 'interrupted', 'error')", name="status"),
        # Pinned messages are few: a partial index finds a conversation's without
        # reading its history. `messages.pinned` repeats this exact predicate
        # (the planners use a partial index only when the query states it).
        Index(
            "ix_messages_pinned",
            "conversation_id",
            "seq",
            sqlite_where=text("pinned = 1"),
            postgresql_where=text("pinned"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        Id, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="complete")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # "metadata" is reserved by the declarative base, hence the attribute name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    rating: Mapped[int | None] = mapped_column(Integer)

    conversation: Mapped[ConversationRow] = relationship(back_populates="messages", lazy="raise")


class TokenCountRow(Base):
    """A message's token count under one tokenizer, so window totals are sums, not re-counts."""

    __tablename__ = "message_token_counts"

    message_id: Mapped[int] = mapped_column(
        Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    tokenizer_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class SummaryRow(Base):
    """One link of a conversation's recursive summary chain (`parent_id` is the one it folded)."""

    __tablename__ = "summaries"
    __table_args__ = (Index(None, "conversation_id", "covers_through_seq"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        Id, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    covers_from_seq: Mapped[int] = mapped_column(Integer)
    covers_through_seq: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("summaries.id", ondelete="CASCADE")
    )
    depth: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    tokenizer_id: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(500))
    prompt_version: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


class PromptTraceRow(Base):
    """What the model saw for one reply; one row per generated assistant message."""

    __tablename__ = "prompt_traces"
    __table_args__ = (Index(None, "conversation_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        Id, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    message_id: Mapped[int] = mapped_column(
        Id, ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    user_message_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("messages.id", ondelete="SET NULL")
    )
    summary_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("summaries.id", ondelete="SET NULL")
    )
    recalled_ids: Mapped[list[Any]] = mapped_column(default=list)
    window_ids: Mapped[list[Any]] = mapped_column(default=list)
    budget: Mapped[int] = mapped_column(Integer)
    total_tokens: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(500))
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    usage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EmbeddingRow(Base):
    """A message's vector under one embedder; `embedder_id` is part of the key, so two never mix.

    `vector` holds `dim` float32 values, little-endian (4 * dim bytes). The
    message's conversation and seq are copied in (both are fixed for a message's
    life) so that one conversation's vectors, or those after a given seq, are
    read from the index alone, without a join.
    """

    __tablename__ = "message_embeddings"
    __table_args__ = (
        CheckConstraint("dim > 0", name="dim"),
        CheckConstraint("length(vector) = 4 * dim", name="vector_size"),
        Index(None, "conversation_id", "embedder_id", "seq"),
    )

    message_id: Mapped[int] = mapped_column(
        Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    embedder_id: Mapped[str] = mapped_column(String(500), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(Id)
    seq: Mapped[int] = mapped_column(Integer)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImportRow(Base):
    """Where an imported conversation came from: its document's content fingerprint and file.

    A re-import of the same document is found by `fingerprint` (SHA-256 of the
    document's canonical JSON) and skipped unless asked for; the row goes with
    its conversation when that is deleted.
    """

    __tablename__ = "conversation_imports"
    __table_args__ = (Index(None, "fingerprint"),)

    conversation_id: Mapped[int] = mapped_column(
        Id, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


# The names these classes had before the `...Row` suffix, kept only because
# benchmarks/store.py still imports them; new code uses the `...Row` names.
Conversation = ConversationRow
Message = MessageRow
MessageTokenCount = TokenCountRow


class TurnLeaseRow(Base):
    """Who is answering a user message right now: its process and when its claim lapses.

    Stored with the user message, renewed while the reply is generated, removed when
    the turn ends. A reply-less user message whose lease is gone, expired or held by
    a process that no longer runs was abandoned (see `recursa.agent.turn_lease`).
    """

    __tablename__ = "turn_leases"

    message_id: Mapped[int] = mapped_column(
        Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(BigInteger)
    token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column()
