"""The conversation store: one handle that runs each entity's queries in a short transaction.

`Store.open(url)` returns a handle bound to one database (SQLite file or
PostgreSQL server); every method runs in its own short transaction and returns
frozen records, never ORM rows. Input is validated before anything is written,
so a bad call leaves nothing half-written.

The queries themselves live in one module per entity (`conversations`,
`messages`, `token_counts`, `summaries`, `traces`, `embeddings`, and `search`
for full-text search); this class owns opening, transactions and closing, and nothing else.

Text rule for both databases: NUL characters (U+0000) are refused with
`InvalidInputError`, because PostgreSQL text cannot hold them and the two
backends must behave alike; every other character, control characters
included, is stored and returned exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal

from recursa.memory import (
    conversations,
    embeddings,
    messages,
    summaries,
    token_counts,
    traces,
    turn_leases,
)
from recursa.memory import messages as _messages
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
from recursa.memory.errors import DatabaseUnavailableError, InvalidInputError
from recursa.memory.locations import default_db_url
from recursa.memory.records import (
    UNSET,
    ConversationExport,
    ConversationKind,
    ConversationRecord,
    MessageRecord,
    MessageRole,
    MessageStatus,
    NewConversation,
    NewMessage,
    NewTrace,
    SearchHit,
    StoredEmbedding,
    SummaryRecord,
    TraceRecord,
    TurnLease,
    Unset,
)
from recursa.memory.schema import ensure_schema
from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

# NewMessage, NewTrace, UNSET and Unset are defined in `records` and re-exported
# here, where the methods that take them are.
__all__ = [
    "UNSET",
    "NewConversation",
    "NewMessage",
    "NewTrace",
    "Store",
    "Unset",
    "prepare_location",
]


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

    # --- conversations ---------------------------------------------------------------

    def create_conversation(
        self,
        *,
        title: str | None = None,
        system_prompt: str | None = None,
        model: str | None = None,
        kind: ConversationKind = "chat",
        settings: Mapping[str, Any] | None = None,
        owner: str | None = None,
        messages: Sequence[NewMessage] = (),
    ) -> ConversationRecord:
        """A new conversation (`owner`: the API key digest it belongs to, if any).

        `messages` are stored with it in the same transaction: the conversation
        exists with all of them, or not at all.
        """
        row = conversations.new_row(
            title=title,
            system_prompt=system_prompt,
            model=model,
            kind=kind,
            settings=settings,
            owner=owner,
        )
        rows = _messages.new_rows(0, messages) if messages else []
        with self._write() as session:
            record = conversations.add(session, row)
            if not rows:
                return record
            for values in rows:
                values["conversation_id"] = record.id
            _messages.append(session, record.id, rows)
            return conversations.get(session, record.id)

    def import_conversations(self, items: Sequence[NewConversation]) -> list[int]:
        """Create conversations with their messages in one transaction: all of them or none.

        Everything is validated before the transaction starts. Each conversation's
        last activity is its last message's time, and its fingerprint and source
        are recorded (see `imported_fingerprints`). Returns the new ids in order.
        """
        prepared = []
        for item in items:
            if not isinstance(item, NewConversation):
                raise InvalidInputError("import_conversations takes NewConversation items.")
            row = conversations.new_row(
                title=item.title,
                system_prompt=item.system_prompt,
                model=item.model,
                kind="chat",
                settings=None,
                owner=item.owner,
            )
            rows = messages.new_rows(0, item.messages)
            fingerprint = (
                None if item.fingerprint is None else check.text("fingerprint", item.fingerprint)
            )
            prepared.append((row, rows, fingerprint, check.optional_text("source", item.source)))
        ids: list[int] = []
        with self._write() as session:
            for row, rows, fingerprint, source in prepared:
                record = conversations.add(session, row)
                for values in rows:
                    values["conversation_id"] = record.id
                if rows:
                    stored = messages.append(session, record.id, rows)
                    conversations.apply_changes(session, record.id, {}, stored[-1].created_at)
                if fingerprint is not None:
                    conversations.record_import(session, record.id, fingerprint, source)
                ids.append(record.id)
        return ids

    def imported_fingerprints(self, fingerprints: Sequence[str]) -> dict[str, int]:
        """Which of these document fingerprints were imported before: fingerprint -> a
        conversation (the oldest still stored) imported from such a document."""
        wanted = sorted({check.text("fingerprint", f) for f in fingerprints})
        with self._read() as session:
            return conversations.imported(session, wanted)

    def get_conversation(self, conversation_id: int) -> ConversationRecord:
        """One conversation; NotFoundError if the id is unknown."""
        with self._read() as session:
            return conversations.get(session, conversation_id)

    def list_conversations(
        self,
        *,
        include_archived: bool = False,
        kind: ConversationKind | None = None,
        limit: int | None = None,
        offset: int = 0,
        owner: str | None | Unset = UNSET,
    ) -> list[ConversationRecord]:
        """Conversations, most recently active first; `owner` keeps only that owner's."""
        statement = conversations.list_query(
            include_archived=include_archived, kind=kind, limit=limit, offset=offset, owner=owner
        )
        with self._read() as session:
            return conversations.fetch(session, statement)

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
        values, stamp = conversations.changes(
            title=title,
            system_prompt=system_prompt,
            model=model,
            settings=settings,
            archived=archived,
            updated_at=updated_at,
        )
        with self._write() as session:
            return conversations.apply_changes(session, conversation_id, values, stamp)

    def conversation_owner(self, conversation_id: int) -> str | None:
        """The owner a conversation was created with (None: none); NotFoundError if unknown."""
        with self._read() as session:
            return conversations.owner_of(session, conversation_id)

    def claim_history(
        self,
        owner: str | None,
        history_key: str,
        *,
        lease: tuple[str, datetime] | None = None,
    ) -> tuple[int, bool] | None:
        """The owner's conversation whose history key this is, taken atomically (or None).

        With `lease=(holder, until)` the turn lease is taken too when it is free, in
        the same transaction. Returns (conversation id, whether the lease was taken).
        """
        check.text("history_key", history_key)
        if lease is not None:
            lease = (check.text("holder", lease[0]), check.timestamp("until", lease[1]) or lease[1])
        with self._write() as session:
            return conversations.claim_history(
                session, check.optional_text("owner", owner), history_key, lease
            )

    def set_history_key(self, conversation_id: int, history_key: str | None) -> None:
        """Record (or with None, clear) the history key a client continues this one with."""
        with self._write() as session:
            conversations.set_history_key(
                session, conversation_id, check.optional_text("history_key", history_key)
            )

    def take_lease(self, conversation_id: int, holder: str, until: datetime) -> bool:
        """Take the conversation's turn lease for `holder` until `until`; False if held."""
        check.integer("conversation_id", conversation_id)
        check.text("holder", holder)
        stamp = check.timestamp("until", until) or until
        with self._write() as session:
            return conversations.take_lease(session, conversation_id, holder, stamp)

    def drop_lease(
        self, conversation_id: int, holder: str, *, history_key: str | None | Unset = UNSET
    ) -> bool:
        """Release the turn lease `holder` took; False if it had passed on.

        `history_key` is recorded in the same statement (only while the lease was held).
        """
        check.integer("conversation_id", conversation_id)
        if history_key is not UNSET:
            history_key = check.optional_text("history_key", history_key)
        with self._write() as session:
            return conversations.drop_lease(session, conversation_id, holder, history_key)

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete a conversation with its messages, summaries and traces in one transaction."""
        with self._write() as session:
            conversations.delete_with_children(session, conversation_id)

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
        lease: TurnLease | None = None,
    ) -> MessageRecord:
        """Append one message with the conversation's next sequence number.

        `lease` records, in the same transaction, which process is answering it
        (see `turn_lease`), so no moment exists where it is stored unclaimed.
        """
        item = NewMessage(role, content, status, metadata, created_at, pinned)
        if lease is None:
            return self.append_messages(conversation_id, [item])[0]
        lease = _check_lease(lease)
        rows = messages.new_rows(conversation_id, [item])
        with self._write() as session:
            (record,) = messages.append(session, conversation_id, rows)
            turn_leases.add(session, record.id, lease)
            return record

    def append_messages(
        self, conversation_id: int, items: Sequence[NewMessage]
    ) -> list[MessageRecord]:
        """Append several messages in order, all or nothing (used by imports)."""
        rows = messages.new_rows(conversation_id, items)  # every message validated first
        if not items:
            with self._read() as session:
                conversations.require(session, conversation_id)
            return []
        with self._write() as session:
            return messages.append(session, conversation_id, rows)

    def turn_lease(self, message_id: int) -> TurnLease | None:
        """The lease on answering this message (None: nobody claims it)."""
        check.integer("message_id", message_id)
        with self._read() as session:
            return turn_leases.get(session, message_id)

    def renew_turn_lease(
        self, message_id: int, lease: TurnLease, *, take_over: bool = False
    ) -> bool:
        """Renew the holder's lease to `lease.expires_at` (False: it is gone or another's);
        `take_over` makes `lease` the message's lease whoever held it."""
        check.integer("message_id", message_id)
        lease = _check_lease(lease)
        with self._write() as session:
            return turn_leases.renew(session, message_id, lease, take_over=take_over)

    def drop_turn_lease(self, message_id: int, token: str) -> None:
        """Remove the lease on this message if `token` holds it (the turn ended)."""
        check.integer("message_id", message_id)
        check.text("token", token)
        with self._write() as session:
            turn_leases.drop(session, message_id, token)

    def get_message(self, message_id: int) -> MessageRecord:
        """One message by id; NotFoundError if unknown."""
        check.integer("message_id", message_id)
        with self._read() as session:
            return messages.get(session, message_id)

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
        values = messages.changes(status=status, metadata=metadata, pinned=pinned, rating=rating)
        with self._write() as session:
            return messages.apply_changes(session, message_id, values, content)

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
        statement = messages.range_query(
            conversation_id,
            after_seq=after_seq,
            through_seq=through_seq,
            limit=limit,
            newest_first=newest_first,
        )
        with self._read() as session:
            conversations.require(session, conversation_id)
            return messages.fetch(session, statement)

    def messages_between(
        self,
        conversation_id: int,
        spans: Sequence[tuple[datetime, datetime]],
        *,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[MessageRecord]:
        """Messages created within any of the [start, end) time `spans`, in seq order.

        `before_seq` keeps only messages before that seq; at most `limit` are
        returned (the oldest). No spans: no messages.
        """
        if not spans:
            return []
        for start, end in spans:
            if not isinstance(start, datetime) or not isinstance(end, datetime):
                raise InvalidInputError("Each span must be a pair of datetimes.")
        statement = messages.between_query(
            conversation_id, spans, before_seq=before_seq, limit=limit
        )
        with self._read() as session:
            conversations.require(session, conversation_id)
            return messages.fetch(session, statement)

    def messages_at(self, conversation_id: int, seqs: Sequence[int]) -> list[MessageRecord]:
        """The messages at these sequence numbers (those that exist), in seq order."""
        wanted = sorted(set(check.ids("seqs", seqs)))
        if not wanted:
            return []
        statement = messages.at_seqs_query(conversation_id, wanted)
        with self._read() as session:
            conversations.require(session, conversation_id)
            return messages.fetch(session, statement)

    def messages_by_ids(self, ids: Sequence[int]) -> list[MessageRecord]:
        """These messages in (conversation, seq) order; NotFoundError if any is missing."""
        wanted = list(dict.fromkeys(check.ids("ids", ids)))
        with self._read() as session:
            return messages.by_ids(session, wanted)

    def pinned_messages(self, conversation_id: int) -> list[MessageRecord]:
        """The conversation's pinned messages, in seq order."""
        with self._read() as session:
            return messages.pinned(session, conversation_id)

    # --- token accounting -----------------------------------------------------------------

    def cached_token_counts(self, message_ids: Sequence[int], tokenizer_id: str) -> dict[int, int]:
        """Stored counts under `tokenizer_id` for those of `message_ids` that have one."""
        ids = list(dict.fromkeys(check.ids("message_ids", message_ids)))
        check.text("tokenizer_id", tokenizer_id)
        with self._read() as session:
            return token_counts.cached(session, ids, tokenizer_id)

    def store_token_counts(self, tokenizer_id: str, counts: Mapping[int, int]) -> None:
        """Cache token counts (message id -> count) under `tokenizer_id`, replacing old ones."""
        rows = token_counts.new_rows(tokenizer_id, counts)
        if not rows:
            return
        with self._write() as session:
            token_counts.upsert(session, rows, self.dialect)

    def window_token_total(self, conversation_id: int, after_seq: int, tokenizer_id: str) -> int:
        """Sum of cached counts of the messages with seq > after_seq (uncached ones count 0)."""
        check.integer("after_seq", after_seq)
        with self._read() as session:
            return token_counts.window_total(session, conversation_id, after_seq, tokenizer_id)

    # --- summaries -------------------------------------------------------------------------

    def latest_summary(self, conversation_id: int) -> SummaryRecord | None:
        """The head of the summary chain, or None before the first compaction."""
        with self._read() as session:
            return summaries.latest(session, conversation_id)

    def summary_chain(self, conversation_id: int) -> list[SummaryRecord]:
        """The chain from the latest summary back to the first, following parent ids."""
        with self._read() as session:
            return summaries.chain(session, conversation_id)

    def get_summary(self, summary_id: int) -> SummaryRecord:
        """One summary by id; NotFoundError if unknown."""
        check.integer("summary_id", summary_id)
        with self._read() as session:
            return summaries.get(session, summary_id)

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
        row = summaries.new_row(
            conversation_id,
            content=content,
            covers_from_seq=covers_from_seq,
            covers_through_seq=covers_through_seq,
            parent_id=parent_id,
            token_count=token_count,
            tokenizer_id=tokenizer_id,
            model=model,
            prompt_version=prompt_version,
            metadata=metadata,
        )
        with self._write() as session:
            return summaries.add(session, row)

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
        message_row = messages.insert_values(
            check.integer("conversation_id", conversation_id),
            0,
            NewMessage("assistant", content, status, metadata),
        )
        trace_values = (
            None
            if trace is None
            else traces.new_values(conversation_id, trace, message_row["created_at"])
        )
        with self._write() as session:
            (message,) = messages.append(session, conversation_id, [message_row])
            if trace_values is None:
                return message, None
            return message, traces.add(session, message.id, trace_values)

    def get_trace(self, message_id: int) -> TraceRecord:
        """The prompt trace of the reply with this message id; NotFoundError if none."""
        check.integer("message_id", message_id)
        with self._read() as session:
            return traces.get(session, message_id)

    def traces(self, conversation_id: int) -> list[TraceRecord]:
        """Every prompt trace of a conversation, in reply order."""
        with self._read() as session:
            conversations.require(session, conversation_id)
            return traces.all_of(session, conversation_id)

    def traces_of(self, message_ids: Sequence[int]) -> list[TraceRecord]:
        """The prompt traces of these replies (ids without one are skipped), in reply order."""
        ids = check.ids("message_ids", message_ids)
        with self._read() as session:
            return traces.of_messages(session, ids)

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
                conversations.require(session, conversation_id)
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
            return ConversationExport(
                conversation=conversations.get(session, conversation_id),
                messages=messages.all_of(session, conversation_id),
                summaries=summaries.all_of(session, conversation_id),
                traces=traces.all_of(session, conversation_id),
            )

    # --- message embeddings ----------------------------------------------------------------------

    def add_embeddings(self, embedder_id: str, dim: int, items: Mapping[int, bytes]) -> None:
        """Store vectors (message id -> `dim` float32 values, little-endian) in one transaction.

        A message that already has a vector under `embedder_id` keeps it, so
        storing the same vectors twice changes nothing. NotFoundError names
        unknown message ids; nothing is stored then.
        """
        rows = embeddings.new_rows(embedder_id, dim, items)
        if not rows:
            return
        with self._write() as session:
            embeddings.add(session, rows, self.dialect)

    def embeddings(
        self,
        conversation_id: int,
        embedder_id: str,
        *,
        after_seq: int = 0,
        through_seq: int | None = None,
    ) -> list[StoredEmbedding]:
        """The conversation's vectors under `embedder_id` with after_seq < seq <= through_seq.

        In seq order, as (message_id, seq, vector bytes); read from one index, without a join.
        """
        statement = embeddings.range_query(
            conversation_id, embedder_id, after_seq=after_seq, through_seq=through_seq
        )
        with self._read() as session:
            return embeddings.fetch(session, conversation_id, statement)

    def embedded_ids(self, message_ids: Sequence[int], embedder_id: str) -> set[int]:
        """Those of `message_ids` that already have a vector under `embedder_id`."""
        ids = list(dict.fromkeys(check.ids("message_ids", message_ids)))
        embedder = embeddings.embedder_id_value(embedder_id)
        with self._read() as session:
            return embeddings.stored_ids(session, ids, embedder)

    def count_embeddings(self, conversation_id: int, embedder_id: str) -> int:
        """How many of the conversation's messages have a vector under `embedder_id`."""
        statement = embeddings.count_query(conversation_id, embedder_id)
        with self._read() as session:
            return embeddings.scalar_count(session, conversation_id, statement)

    def messages_without_embedding(
        self,
        conversation_id: int,
        embedder_id: str,
        *,
        limit: int | None,
        after_seq: int = 0,
        through_seq: int | None = None,
    ) -> list[MessageRecord]:
        """The first `limit` messages in after_seq < seq <= through_seq that lack a vector.

        Only messages that should have one: status not "error", content not
        empty. In seq order, so `after_seq` = the last one's seq reads the next page.
        """
        statement = embeddings.missing_query(
            conversation_id, embedder_id, limit=limit, after_seq=after_seq, through_seq=through_seq
        )
        with self._read() as session:
            return embeddings.missing(session, conversation_id, statement)

    def count_messages_without_embedding(self, conversation_id: int, embedder_id: str) -> int:
        """How many of the conversation's messages should have a vector and have none yet."""
        statement = embeddings.count_missing_query(conversation_id, embedder_id)
        with self._read() as session:
            return embeddings.scalar_count(session, conversation_id, statement)


def _check_lease(lease: object) -> TurnLease:
    if not isinstance(lease, TurnLease):
        raise InvalidInputError("lease must be a TurnLease.")
    check.text("lease host", lease.host)
    check.text("lease token", lease.token)
    check.integer("lease pid", lease.pid, minimum=0)
    if check.timestamp("lease expiry", lease.expires_at) is None:
        raise InvalidInputError("lease expiry must be a datetime.")
    return lease
