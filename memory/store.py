"""The conversation store: conversations, messages, token counts, summaries, traces, search.

`Store.open(url)` returns a handle bound to one database (SQLite file or
PostgreSQL server); every method runs in its own short transaction and returns
frozen records, never ORM rows. Input is validated before anything is written,
so a bad call leaves nothing half-written.

Text rule for both databases: NUL characters (U+0000) are refused with
`InvalidInputError`, because PostgreSQL text cannot hold them and the two
backends must behave alike; every other character, control characters
included, is stored and returned exactly.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, TypeVar, get_args

from recursa.memory import convert as records
from recursa.memory import search as fts
from recursa.memory import validation as check
from recursa.memory.engine import (
    SQLITE_IMMEDIATE,
    make_engine,
    parse_url,
    safe_url,
    sqlite_path,
    translate_errors,
)
from recursa.memory.errors import (
    CompactionConflict,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
)
from recursa.memory.locations import default_db_url
from recursa.memory.models import (
    Conversation,
    Message,
    MessageTokenCount,
    PromptTrace,
    Summary,
    utcnow,
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
from recursa.memory.schema import ensure_schema
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

__all__ = ["UNSET", "NewMessage", "NewTrace", "Store", "Unset", "prepare_location"]

_T = TypeVar("_T")

ROLES: Final = frozenset(get_args(MessageRole))
STATUSES: Final = frozenset(get_args(MessageStatus))
KINDS: Final = frozenset(get_args(ConversationKind))
# Ids per IN (...) list: well under SQLite's bound-parameter limit.
_ID_CHUNK = 500


class Unset(enum.Enum):
    """Type of `UNSET`, the "leave this field as it is" default of update methods."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET


@dataclass(frozen=True)
class NewMessage:
    """A message to append (for imports: `created_at` keeps the original time)."""

    role: MessageRole
    content: str
    status: MessageStatus = "complete"
    metadata: Mapping[str, Any] | None = None
    created_at: datetime | None = None
    pinned: bool = False


@dataclass(frozen=True, kw_only=True)
class NewTrace:
    """The prompt trace of a reply, before it is stored (see `TraceRecord`)."""

    model: str
    budget: int
    total_tokens: int
    user_message_id: int | None = None
    summary_id: int | None = None
    recalled_ids: Sequence[int] = ()
    window_ids: Sequence[int] = ()
    plan: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    usage: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, Any] = field(default_factory=dict)
    notes: Sequence[str] = ()


def _message_row(conversation_id: int, seq: int, item: NewMessage) -> dict[str, Any]:
    check.choice("role", item.role, ROLES)
    status = check.choice("status", item.status, STATUSES)
    # An assistant reply may legitimately be empty (cut off before its first token).
    content = check.text("content", item.content, allow_empty=item.role == "assistant")
    return {
        "conversation_id": conversation_id,
        "seq": seq,
        "role": item.role,
        "content": content,
        "status": status,
        "meta": check.json_value(
            "metadata", item.metadata if item.metadata is not None else {}, dict
        ),
        "created_at": check.timestamp("created_at", item.created_at) or utcnow(),
        "pinned": check.boolean("pinned", item.pinned),
    }


def _no_conversation(conversation_id: int) -> NotFoundError:
    return NotFoundError(
        f"No conversation with id {conversation_id}: list them with `recursa conversations list`."
    )


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), _ID_CHUNK):
        yield ids[start : start + _ID_CHUNK]


def prepare_location(url: URL) -> None:
    """Make the folder of a SQLite database file, or say clearly why it cannot be made."""
    path = sqlite_path(url) if url.get_backend_name() == "sqlite" else None
    if path is None:
        return
    fix = "Make it writable, or set RECURSA_HOME or RECURSA_DB_URL to a writable location."
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnavailableError(
            f"Cannot create the data directory {path.parent} ({exc.strerror or exc}). {fix}"
        ) from exc
    if path.is_dir():
        raise DatabaseUnavailableError(
            f"The database path {path} is a directory, not a file. Move it aside or set "
            "RECURSA_DB_URL to a file."
        )


class Store:
    """A handle on one recursa database. Thread-safe; open it once and share it.

    Use `Store.open(url)`; close it with `close()` or a `with` block.
    """

    def __init__(self, engine: Engine) -> None:
        """Wrap an engine made by `recursa.memory.engine.make_engine` (schema already at head)."""
        self._engine = engine
        # Writers start with BEGIN IMMEDIATE on SQLite (no effect on PostgreSQL).
        self._write_engine = engine.execution_options(**{SQLITE_IMMEDIATE: True})
        self._url = engine.url
        self.url: str = safe_url(engine.url)
        self.dialect: str = engine.dialect.name

    @classmethod
    def open(cls, url: str | None = None, *, upgrade: bool = True) -> Store:
        """Open the database at `url` (default: RECURSA_DB_URL or the embedded SQLite file).

        Makes the data directory, and brings an older schema up to date
        (`upgrade=False`: raise SchemaError instead). A schema newer than this
        recursa raises SchemaError; an unusable database DatabaseUnavailableError.
        """
        parsed = parse_url(url or default_db_url())
        prepare_location(parsed)
        engine = make_engine(parsed)
        try:
            ensure_schema(engine, upgrade=upgrade)
        except BaseException:
            # Even an interrupt must not leave a pooled connection (or a SQLite lock) behind.
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # --- transactions ---------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with translate_errors(self._url), Session(self._engine) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with (
            translate_errors(self._url),
            Session(self._write_engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    @staticmethod
    def _conversation_row(
        session: Session, conversation_id: int, *, lock: bool = False
    ) -> Conversation:
        check.integer("conversation_id", conversation_id)
        statement = select(Conversation).where(Conversation.id == conversation_id)
        if lock:
            statement = statement.with_for_update()
        row = session.scalars(statement).one_or_none()
        if row is None:
            raise _no_conversation(conversation_id)
        return row

    @staticmethod
    def _exists(session: Session, conversation_id: int) -> None:
        check.integer("conversation_id", conversation_id)
        found = session.scalar(select(Conversation.id).where(Conversation.id == conversation_id))
        if found is None:
            raise _no_conversation(conversation_id)

    @staticmethod
    def _allocate_seq(session: Session, conversation_id: int, count: int) -> int:
        """Reserve `count` sequence numbers; returns the first.

        The UPDATE ... RETURNING takes the conversation row's write lock (PostgreSQL)
        or runs inside BEGIN IMMEDIATE (SQLite), so concurrent appenders queue here
        and each sees the previous one's committed counter.
        """
        check.integer("conversation_id", conversation_id)
        last = session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(last_seq=Conversation.last_seq + count, updated_at=utcnow())
            .returning(Conversation.last_seq)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if last is None:
            raise _no_conversation(conversation_id)
        return int(last) - count + 1

    # --- conversations ---------------------------------------------------------------

    def create_conversation(
        self,
        *,
        title: str | None = None,
        system_prompt: str | None = None,
        model: str | None = None,
        kind: ConversationKind = "chat",
        settings: Mapping[str, Any] | None = None,
    ) -> ConversationRecord:
        """A new, empty conversation."""
        now = utcnow()
        row = Conversation(
            title=check.optional_text("title", title),
            system_prompt=check.optional_text("system_prompt", system_prompt),
            model=check.optional_text("model", model),
            kind=check.choice("kind", kind, KINDS),
            settings=check.json_value("settings", settings if settings is not None else {}, dict),
            archived=False,
            created_at=now,
            updated_at=now,
            last_seq=0,
        )
        with self._write() as session:
            session.add(row)
            session.flush()
            return records.conversation_record(row)

    def get_conversation(self, conversation_id: int) -> ConversationRecord:
        """One conversation; NotFoundError if the id is unknown."""
        with self._read() as session:
            return records.conversation_record(self._conversation_row(session, conversation_id))

    def list_conversations(
        self,
        *,
        include_archived: bool = False,
        kind: ConversationKind | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ConversationRecord]:
        """Conversations, most recently active first."""
        statement = select(Conversation).order_by(
            Conversation.updated_at.desc(), Conversation.id.desc()
        )
        if not include_archived:
            statement = statement.where(Conversation.archived.is_(False))
        if kind is not None:
            statement = statement.where(Conversation.kind == check.choice("kind", kind, KINDS))
        if limit is not None:
            statement = statement.limit(check.integer("limit", limit, minimum=0))
        if offset:
            statement = statement.offset(check.integer("offset", offset, minimum=0))
        with self._read() as session:
            return [records.conversation_record(row) for row in session.scalars(statement)]

    def update_conversation(
        self,
        conversation_id: int,
        *,
        title: str | None | Unset = UNSET,
        system_prompt: str | None | Unset = UNSET,
        model: str | None | Unset = UNSET,
        settings: Mapping[str, Any] | Unset = UNSET,
        archived: bool | Unset = UNSET,
        updated_at: datetime | Unset = UNSET,
    ) -> ConversationRecord:
        """Change the given fields (rename, archive, ...); others stay as they are.

        A change stamps the conversation's last activity with the current time,
        unless `updated_at` gives it (an import keeps the original last activity).
        """
        stamp = check.timestamp("updated_at", updated_at) if updated_at is not UNSET else None
        values: dict[str, Any] = {}
        if title is not UNSET:
            values["title"] = check.optional_text("title", title)
        if system_prompt is not UNSET:
            values["system_prompt"] = check.optional_text("system_prompt", system_prompt)
        if model is not UNSET:
            values["model"] = check.optional_text("model", model)
        if settings is not UNSET:
            values["settings"] = check.json_value("settings", settings, dict)
        if archived is not UNSET:
            values["archived"] = check.boolean("archived", archived)
        with self._write() as session:
            row = self._conversation_row(session, conversation_id, lock=True)
            for key, value in values.items():
                setattr(row, key, value)
            if values or stamp is not None:
                row.updated_at = stamp or utcnow()
            session.flush()
            return records.conversation_record(row)

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete a conversation with its messages, summaries and traces in one transaction."""
        with self._write() as session:
            self._conversation_row(session, conversation_id, lock=True)
            message_ids = select(Message.id).where(Message.conversation_id == conversation_id)
            # Children first, explicitly: correct even where ON DELETE CASCADE is not enforced.
            session.execute(
                delete(PromptTrace).where(PromptTrace.conversation_id == conversation_id)
            )
            session.execute(
                delete(MessageTokenCount).where(MessageTokenCount.message_id.in_(message_ids))
            )
            session.execute(delete(Summary).where(Summary.conversation_id == conversation_id))
            session.execute(delete(Message).where(Message.conversation_id == conversation_id))
            session.execute(delete(Conversation).where(Conversation.id == conversation_id))

    # --- messages --------------------------------------------------------------------

    def append_message(
        self,
        conversation_id: int,
        role: MessageRole,
        content: str,
        *,
        status: MessageStatus = "complete",
        metadata: Mapping[str, Any] | None = None,
        created_at: datetime | None = None,
        pinned: bool = False,
    ) -> MessageRecord:
        """Append one message with the conversation's next sequence number."""
        item = NewMessage(role, content, status, metadata, created_at, pinned)
        return self.append_messages(conversation_id, [item])[0]

    def append_messages(
        self, conversation_id: int, items: Sequence[NewMessage]
    ) -> list[MessageRecord]:
        """Append several messages in order, all or nothing (used by imports)."""
        check.integer("conversation_id", conversation_id)
        if not all(isinstance(item, NewMessage) for item in items):
            raise InvalidInputError("append_messages takes a sequence of NewMessage.")
        if not items:
            with self._read() as session:
                self._exists(session, conversation_id)
            return []
        rows = [_message_row(conversation_id, 0, item) for item in items]  # validate first
        with self._write() as session:
            first = self._allocate_seq(session, conversation_id, len(rows))
            for offset, row in enumerate(rows):
                row["seq"] = first + offset
            inserted = session.scalars(
                insert(Message).returning(Message, sort_by_parameter_order=True), rows
            ).all()
            return [records.message_record(row) for row in inserted]

    def get_message(self, message_id: int) -> MessageRecord:
        """One message by id; NotFoundError if unknown."""
        check.integer("message_id", message_id)
        with self._read() as session:
            row = session.get(Message, message_id)
            if row is None:
                raise NotFoundError(f"No message with id {message_id} in this database.")
            return records.message_record(row)

    def update_message(
        self,
        message_id: int,
        *,
        content: str | Unset = UNSET,
        status: MessageStatus | Unset = UNSET,
        metadata: Mapping[str, Any] | Unset = UNSET,
        pinned: bool | Unset = UNSET,
        rating: int | None | Unset = UNSET,
    ) -> MessageRecord:
        """Change the given fields of a message; a new content drops its cached token counts."""
        check.integer("message_id", message_id)
        values: dict[str, Any] = {}
        if status is not UNSET:
            values["status"] = check.choice("status", status, STATUSES)
        if metadata is not UNSET:
            values["meta"] = check.json_value("metadata", metadata, dict)
        if pinned is not UNSET:
            values["pinned"] = check.boolean("pinned", pinned)
        if rating is not UNSET:
            values["rating"] = check.optional_integer("rating", rating)
        with self._write() as session:
            row = session.get(Message, message_id)
            if row is None:
                raise NotFoundError(f"No message with id {message_id} in this database.")
            if content is not UNSET:
                values["content"] = check.text(
                    "content", content, allow_empty=row.role == "assistant"
                )
                if values["content"] != row.content:
                    session.execute(
                        delete(MessageTokenCount).where(MessageTokenCount.message_id == message_id)
                    )
            for key, value in values.items():
                setattr(row, key, value)
            session.flush()
            return records.message_record(row)

    def messages(
        self,
        conversation_id: int,
        *,
        after_seq: int = 0,
        through_seq: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[MessageRecord]:
        """Messages with after_seq < seq <= through_seq, in seq order (or newest first).

        With `limit`, the first `limit` of that order: the oldest ones, or with
        `newest_first` the most recent ones.
        """
        check.integer("after_seq", after_seq)
        statement = select(Message).where(
            Message.conversation_id == conversation_id, Message.seq > after_seq
        )
        if through_seq is not None:
            statement = statement.where(Message.seq <= check.integer("through_seq", through_seq))
        statement = statement.order_by(Message.seq.desc() if newest_first else Message.seq)
        if limit is not None:
            statement = statement.limit(check.integer("limit", limit, minimum=0))
        with self._read() as session:
            self._exists(session, conversation_id)
            return [records.message_record(row) for row in session.scalars(statement)]

    def messages_by_ids(self, ids: Sequence[int]) -> list[MessageRecord]:
        """These messages in (conversation, seq) order; NotFoundError if any is missing."""
        wanted = list(dict.fromkeys(check.ids("ids", ids)))
        found: list[Message] = []
        with self._read() as session:
            for chunk in _chunks(wanted):
                found.extend(session.scalars(select(Message).where(Message.id.in_(chunk))))
        missing = set(wanted) - {row.id for row in found}
        if missing:
            raise NotFoundError(f"No messages with ids {sorted(missing)} in this database.")
        found.sort(key=lambda row: (row.conversation_id, row.seq))
        return [records.message_record(row) for row in found]

    def pinned_messages(self, conversation_id: int) -> list[MessageRecord]:
        """The conversation's pinned messages, in seq order."""
        # `pinned = 1` (SQLite) / `pinned` (PostgreSQL) is the predicate of the partial
        # index ix_messages_pinned, so the planner reads only the pins; `IS true`, say,
        # would not match it and the query would scan the whole conversation.
        statement = (
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.pinned)
            .order_by(Message.seq)
        )
        with self._read() as session:
            self._exists(session, conversation_id)
            return [records.message_record(row) for row in session.scalars(statement)]

    # --- token accounting -----------------------------------------------------------------

    def cached_token_counts(self, message_ids: Sequence[int], tokenizer_id: str) -> dict[int, int]:
        """Stored counts under `tokenizer_id` for those of `message_ids` that have one."""
        ids = list(dict.fromkeys(check.ids("message_ids", message_ids)))
        check.text("tokenizer_id", tokenizer_id)
        counts: dict[int, int] = {}
        with self._read() as session:
            for chunk in _chunks(ids):
                rows = session.execute(
                    select(MessageTokenCount.message_id, MessageTokenCount.count).where(
                        MessageTokenCount.tokenizer_id == tokenizer_id,
                        MessageTokenCount.message_id.in_(chunk),
                    )
                )
                counts.update({int(mid): int(count) for mid, count in rows})
        return counts

    def store_token_counts(self, tokenizer_id: str, counts: Mapping[int, int]) -> None:
        """Cache token counts (message id -> count) under `tokenizer_id`, replacing old ones."""
        check.text("tokenizer_id", tokenizer_id)
        if not isinstance(counts, Mapping):
            raise InvalidInputError("counts must be a mapping of message id to token count.")
        rows = [
            {
                "message_id": check.integer("message id", mid),
                "tokenizer_id": tokenizer_id,
                "count": check.integer("token count", count, minimum=0),
            }
            for mid, count in counts.items()
        ]
        if not rows:
            return
        upsert_factory = pg_insert if self.dialect == "postgresql" else sqlite_insert
        with self._write() as session:
            ids = [row["message_id"] for row in rows]
            present: set[int] = set()
            for chunk in _chunks(ids):
                present.update(session.scalars(select(Message.id).where(Message.id.in_(chunk))))
            missing = set(ids) - present
            if missing:
                raise NotFoundError(f"No messages with ids {sorted(missing)} in this database.")
            statement = upsert_factory(MessageTokenCount)
            statement = statement.on_conflict_do_update(
                index_elements=["message_id", "tokenizer_id"],
                set_={"count": statement.excluded.count},
            )
            session.execute(statement, rows)

    def window_token_total(self, conversation_id: int, after_seq: int, tokenizer_id: str) -> int:
        """Sum of cached counts of the messages with seq > after_seq (uncached ones count 0)."""
        check.integer("after_seq", after_seq)
        # A correlated scalar subquery, not a join: it pins the plan to "walk the window
        # on (conversation_id, seq), look each count up by primary key". With a join,
        # PostgreSQL misjudges how many rows seq > after_seq leaves in mid-sized
        # conversations and hashes the whole token-count table: a cost that grows
        # with every conversation's history instead of with the window.
        count = (
            select(MessageTokenCount.count)
            .where(
                MessageTokenCount.message_id == Message.id,
                MessageTokenCount.tokenizer_id == tokenizer_id,
            )
            .correlate(Message)
            .scalar_subquery()
        )
        statement = select(func.coalesce(func.sum(count), 0)).where(
            Message.conversation_id == conversation_id, Message.seq > after_seq
        )
        with self._read() as session:
            self._exists(session, conversation_id)
            return int(session.scalar(statement) or 0)

    # --- summaries -------------------------------------------------------------------------

    def latest_summary(self, conversation_id: int) -> SummaryRecord | None:
        """The head of the summary chain, or None before the first compaction."""
        with self._read() as session:
            self._exists(session, conversation_id)
            row = self._latest_summary_row(session, conversation_id)
            return None if row is None else records.summary_record(row)

    @staticmethod
    def _latest_summary_row(session: Session, conversation_id: int) -> Summary | None:
        return session.scalars(
            select(Summary)
            .where(Summary.conversation_id == conversation_id)
            .order_by(Summary.covers_through_seq.desc(), Summary.id.desc())
            .limit(1)
        ).first()

    def summary_chain(self, conversation_id: int) -> list[SummaryRecord]:
        """The chain from the latest summary back to the first, following parent ids."""
        with self._read() as session:
            self._exists(session, conversation_id)
            rows = {
                row.id: row
                for row in session.scalars(
                    select(Summary).where(Summary.conversation_id == conversation_id)
                )
            }
            head = self._latest_summary_row(session, conversation_id)
        chain: list[SummaryRecord] = []
        while head is not None:
            chain.append(records.summary_record(head))
            head = rows.get(head.parent_id) if head.parent_id is not None else None
        return chain

    def get_summary(self, summary_id: int) -> SummaryRecord:
        """One summary by id; NotFoundError if unknown."""
        check.integer("summary_id", summary_id)
        with self._read() as session:
            row = session.get(Summary, summary_id)
            if row is None:
                raise NotFoundError(f"No summary with id {summary_id} in this database.")
            return records.summary_record(row)

    def add_summary(
        self,
        conversation_id: int,
        *,
        content: str,
        covers_from_seq: int,
        covers_through_seq: int,
        parent_id: int | None,
        token_count: int,
        tokenizer_id: str | None,
        model: str | None,
        prompt_version: str | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> SummaryRecord:
        """Store the next link of the summary chain, in one transaction.

        CompactionConflict when `parent_id` is not the conversation's latest
        summary (another process compacted first) or the coverage does not move
        past the parent's; InvalidInputError when it reaches past the last message.
        """
        row = Summary(
            conversation_id=check.integer("conversation_id", conversation_id),
            content=check.text("content", content),
            covers_from_seq=check.integer("covers_from_seq", covers_from_seq, minimum=1),
            covers_through_seq=check.integer("covers_through_seq", covers_through_seq, minimum=1),
            parent_id=check.optional_integer("parent_id", parent_id),
            token_count=check.integer("token_count", token_count, minimum=0),
            tokenizer_id=check.optional_text("tokenizer_id", tokenizer_id),
            model=check.optional_text("model", model),
            prompt_version=check.optional_text("prompt_version", prompt_version),
            meta=check.json_value("metadata", metadata if metadata is not None else {}, dict),
            created_at=utcnow(),
        )
        if covers_from_seq > covers_through_seq:
            raise InvalidInputError(
                f"covers_from_seq ({covers_from_seq}) is after "
                f"covers_through_seq ({covers_through_seq})."
            )
        with self._write() as session:
            # The row lock (PostgreSQL) / BEGIN IMMEDIATE (SQLite) makes check-then-insert atomic.
            conversation = self._conversation_row(session, conversation_id, lock=True)
            latest = self._latest_summary_row(session, conversation_id)
            latest_id = latest.id if latest is not None else None
            if latest_id != parent_id:
                raise CompactionConflict(
                    f"Conversation {conversation_id}'s latest summary is {latest_id}, not "
                    f"{parent_id}: another writer compacted first. Rebuild the prompt and retry."
                )
            floor = latest.covers_through_seq if latest is not None else 0
            if covers_through_seq <= floor:
                raise CompactionConflict(
                    f"The new summary covers through seq {covers_through_seq}, which does not "
                    f"move past its parent's coverage ({floor})."
                )
            if covers_through_seq > conversation.last_seq:
                raise InvalidInputError(
                    f"covers_through_seq {covers_through_seq} is past the conversation's last "
                    f"message (seq {conversation.last_seq})."
                )
            row.depth = latest.depth + 1 if latest is not None else 1
            session.add(row)
            session.flush()
            return records.summary_record(row)

    # --- replies and traces --------------------------------------------------------------------

    def add_reply(
        self,
        conversation_id: int,
        content: str,
        *,
        status: MessageStatus = "complete",
        metadata: Mapping[str, Any] | None = None,
        trace: NewTrace | None = None,
    ) -> tuple[MessageRecord, TraceRecord | None]:
        """Append an assistant message and its prompt trace in one transaction."""
        message_row = _message_row(
            check.integer("conversation_id", conversation_id),
            0,
            NewMessage("assistant", content, status, metadata),
        )
        trace_values: dict[str, Any] | None = None
        if trace is not None:
            if not isinstance(trace, NewTrace):
                raise InvalidInputError("trace must be a NewTrace.")
            trace_values = {
                "conversation_id": conversation_id,
                "user_message_id": check.optional_integer(
                    "trace.user_message_id", trace.user_message_id
                ),
                "summary_id": check.optional_integer("trace.summary_id", trace.summary_id),
                "recalled_ids": check.ids("trace.recalled_ids", trace.recalled_ids),
                "window_ids": check.ids("trace.window_ids", trace.window_ids),
                "budget": check.integer("trace.budget", trace.budget),
                "total_tokens": check.integer("trace.total_tokens", trace.total_tokens, minimum=0),
                "model": check.text("trace.model", trace.model),
                "plan": check.json_value("trace.plan", trace.plan, dict),
                "params": check.json_value("trace.params", trace.params, dict),
                "usage": check.json_value("trace.usage", trace.usage, dict),
                "timings": check.json_value("trace.timings", trace.timings, dict),
                "notes": [
                    check.text("trace.notes", note, allow_empty=True)
                    for note in check.json_value("trace.notes", list(trace.notes), list)
                ],
                "created_at": message_row["created_at"],
            }
        with self._write() as session:
            message_row["seq"] = self._allocate_seq(session, conversation_id, 1)
            message = session.scalars(insert(Message).returning(Message), [message_row]).one()
            if trace_values is None:
                return records.message_record(message), None
            self._check_trace_refs(session, conversation_id, trace_values)
            trace_row = PromptTrace(message_id=message.id, **trace_values)
            session.add(trace_row)
            session.flush()
            return records.message_record(message), records.trace_record(trace_row)

    @staticmethod
    def _check_trace_refs(session: Session, conversation_id: int, values: dict[str, Any]) -> None:
        user_id = values["user_message_id"]
        if user_id is not None and session.get(Message, user_id) is None:
            raise NotFoundError(f"The trace's user message {user_id} does not exist.")
        summary_id = values["summary_id"]
        if summary_id is not None and session.get(Summary, summary_id) is None:
            raise NotFoundError(f"The trace's summary {summary_id} does not exist.")

    def get_trace(self, message_id: int) -> TraceRecord:
        """The prompt trace of the reply with this message id; NotFoundError if none."""
        check.integer("message_id", message_id)
        with self._read() as session:
            row = session.scalars(
                select(PromptTrace).where(PromptTrace.message_id == message_id)
            ).one_or_none()
            if row is None:
                raise NotFoundError(
                    f"No prompt trace for message {message_id}: only generated replies have one."
                )
            return records.trace_record(row)

    def traces(self, conversation_id: int) -> list[TraceRecord]:
        """Every prompt trace of a conversation, in reply order."""
        with self._read() as session:
            self._exists(session, conversation_id)
            return [records.trace_record(row) for row in self._trace_rows(session, conversation_id)]

    @staticmethod
    def _trace_rows(session: Session, conversation_id: int) -> list[PromptTrace]:
        return list(
            session.scalars(
                select(PromptTrace)
                .where(PromptTrace.conversation_id == conversation_id)
                .order_by(PromptTrace.message_id)
            )
        )

    # --- search and export ---------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        conversation_id: int | None = None,
        through_seq: int | None = None,
        limit: int = 20,
        include_summaries: bool = True,
        match: Literal["all", "any"] = "all",
    ) -> list[SearchHit]:
        """Ranked full-text hits (best first) over messages and summaries.

        `query` is user text: it is split into words and each is matched
        literally, so FTS operators and quotes in it have no special meaning.
        "all" needs every word, "any" at least one. `through_seq` keeps messages
        with seq <= through_seq and summaries covering no further.
        """
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a string, not {type(query).__name__}.")
        check.choice("match", match, frozenset({"all", "any"}))
        check.optional_integer("conversation_id", conversation_id)
        check.optional_integer("through_seq", through_seq)
        check.integer("limit", limit, minimum=0)
        with self._read() as session:
            if conversation_id is not None:
                self._exists(session, conversation_id)
            return fts.search(
                session.connection(),
                query,
                conversation_id=conversation_id,
                through_seq=through_seq,
                limit=limit,
                include_summaries=include_summaries,
                match=match,
            )

    def export_conversation(self, conversation_id: int) -> ConversationExport:
        """The whole conversation as plain records, read in one consistent transaction."""
        with self._read() as session:
            conversation = self._conversation_row(session, conversation_id)
            messages = session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.seq)
            )
            summaries = session.scalars(
                select(Summary)
                .where(Summary.conversation_id == conversation_id)
                .order_by(Summary.id)
            )
            return ConversationExport(
                conversation=records.conversation_record(conversation),
                messages=[records.message_record(row) for row in messages],
                summaries=[records.summary_record(row) for row in summaries],
                traces=[
                    records.trace_record(row) for row in self._trace_rows(session, conversation_id)
                ],
            )
