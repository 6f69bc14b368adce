"""The dialogue manager: `Agent`, the one API the library, the CLI and the TUI all use.

A turn, as data flow: commit the user message; plan the prompt under an exact
token budget (system prompt with the running summary, the verbatim window,
recalled excerpts, the new message); compact first if the window cannot fit;
stream the reply; fold old turns into the summary right after the reply when
the next turn will need it; commit the reply and its prompt trace together.

    from recursa.agent import Agent

    with Agent.open(max_prompt_tokens=1024) as agent:
        cid = agent.create_conversation(title="Notes")
        reply = agent.send(cid, "My sister is called Ada.")
        print(reply.text, reply.trace.total_tokens)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from recursa.agent.compaction import (
    CompactionDecision,
    WindowItem,
    decide_compaction,
    water_marks,
)
from recursa.agent.documents import ConversationDocument
from recursa.agent.errors import (
    BudgetError,
    ConfigError,
    InvalidInputError,
    ModelError,
    NotFoundError,
    RecursaError,
)
from recursa.agent.plan import (
    NewText,
    PlanSection,
    PromptPlan,
    build_plan,
    compute_budget,
    flexible_budget,
    message_cost,
)
from recursa.agent.recall import recall_candidates, usable
from recursa.agent.runtime.protocol import (
    CancelToken,
    ChatMessage,
    GenerationParams,
    Runtime,
    Usage,
)
from recursa.agent.settings import Settings
from recursa.agent.summarize import ModelSummarizer, Summarizer, Turn, cut_to_tokens
from recursa.agent.templates import Templates
from recursa.memory.records import (
    ConversationRecord,
    MessageRecord,
    SearchHit,
    SummaryRecord,
    TraceRecord,
)

if TYPE_CHECKING:
    from recursa.memory.store import Store

__all__ = [
    "Agent",
    "CompactionReport",
    "ConversationInfo",
    "MessageInfo",
    "PlanSection",
    "PromptPlan",
    "PromptTrace",
    "Reply",
    "ReplyStream",
    "AsyncReplyStream",
    "SearchResult",
    "StreamChunk",
    "SummaryInfo",
    "TurnFailedError",
]

ProgressCallback = Callable[[str, float | None], None]
ReplyStatus = Literal["complete", "interrupted", "error"]


# --- boundary models ---------------------------------------------------------------------


class ConversationInfo(BaseModel):
    """A conversation as listings and headers show it."""

    model_config = ConfigDict(frozen=True)

    id: int
    title: str | None
    system_prompt: str | None
    model: str | None
    kind: str = "chat"
    settings: dict[str, Any] = Field(default_factory=dict)
    archived: bool = False
    created_at: datetime
    updated_at: datetime
    message_count: int = 0
    last_seq: int = 0

    @classmethod
    def from_record(cls, r: ConversationRecord) -> ConversationInfo:
        return cls(
            id=r.id,
            title=r.title,
            system_prompt=r.system_prompt,
            model=r.model,
            kind=r.kind,
            settings=dict(r.settings),
            archived=r.archived,
            created_at=r.created_at,
            updated_at=r.updated_at,
            message_count=r.message_count,
            last_seq=r.last_seq,
        )


class MessageInfo(BaseModel):
    """One stored message: id, sequence number, role, content, timestamps, metadata."""

    model_config = ConfigDict(frozen=True)

    id: int
    conversation_id: int
    seq: int
    role: str
    content: str
    status: str = "complete"
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)
    pinned: bool = False
    rating: int | None = None

    @classmethod
    def from_record(cls, r: MessageRecord) -> MessageInfo:
        return cls(
            id=r.id,
            conversation_id=r.conversation_id,
            seq=r.seq,
            role=r.role,
            content=r.content,
            status=r.status,
            created_at=r.created_at,
            metadata=dict(r.metadata),
            pinned=r.pinned,
            rating=r.rating,
        )


class SummaryInfo(BaseModel):
    """One link of the summary chain, with the range of messages it covers."""

    model_config = ConfigDict(frozen=True)

    id: int
    conversation_id: int
    covers_from_seq: int
    covers_through_seq: int
    parent_id: int | None
    depth: int
    content: str
    token_count: int
    tokenizer_id: str | None
    model: str | None
    prompt_version: str | None
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_record(cls, r: SummaryRecord) -> SummaryInfo:
        return cls(
            id=r.id,
            conversation_id=r.conversation_id,
            covers_from_seq=r.covers_from_seq,
            covers_through_seq=r.covers_through_seq,
            parent_id=r.parent_id,
            depth=r.depth,
            content=r.content,
            token_count=r.token_count,
            tokenizer_id=r.tokenizer_id,
            model=r.model,
            prompt_version=r.prompt_version,
            created_at=r.created_at,
            metadata=dict(r.metadata),
        )


class SearchResult(BaseModel):
    """One full-text search hit (a message or a summary)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["message", "summary"]
    id: int
    conversation_id: int
    seq: int
    role: str
    snippet: str
    rank: float
    created_at: datetime

    @classmethod
    def from_hit(cls, h: SearchHit) -> SearchResult:
        return cls(
            kind=h.kind,
            id=h.id,
            conversation_id=h.conversation_id,
            seq=h.seq,
            role=h.role,
            snippet=h.snippet,
            rank=h.rank,
            created_at=h.created_at,
        )


class CompactionReport(BaseModel):
    """What one compaction did (or why it did not)."""

    model_config = ConfigDict(frozen=True)

    status: Literal["compacted", "not_needed", "conflict", "failed"]
    when: Literal["before_reply", "after_reply", "explicit"] = "after_reply"
    summary_id: int | None = None
    parent_id: int | None = None
    covers_from_seq: int | None = None
    covers_through_seq: int | None = None
    evicted_ids: list[int] = Field(default_factory=list)
    window_tokens_before: int = 0
    window_tokens_after: int = 0
    summary_tokens: int = 0
    summarizer_calls: int = 0
    duration_s: float = 0.0
    error: str | None = None
    notes: list[str] = Field(default_factory=list)


class PromptTrace(BaseModel):
    """What the model saw for one reply: the plan (with the rendered prompt) and the figures."""

    model_config = ConfigDict(frozen=True)

    id: int
    conversation_id: int
    message_id: int
    user_message_id: int | None
    summary_id: int | None
    recalled_ids: list[int]
    window_ids: list[int]
    budget: int
    total_tokens: int
    model: str
    plan: PromptPlan
    params: dict[str, Any] = Field(default_factory=dict)
    usage: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, Any] = Field(default_factory=dict)
    compactions: list[CompactionReport] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    created_at: datetime

    @property
    def messages(self) -> list[ChatMessage]:
        """The exact prompt that was sent."""
        return list(self.plan.messages)

    @classmethod
    def from_record(cls, r: TraceRecord) -> PromptTrace:
        timings = dict(r.timings)
        compactions = [CompactionReport.model_validate(c) for c in timings.pop("compactions", [])]
        return cls(
            id=r.id,
            conversation_id=r.conversation_id,
            message_id=r.message_id,
            user_message_id=r.user_message_id,
            summary_id=r.summary_id,
            recalled_ids=list(r.recalled_ids),
            window_ids=list(r.window_ids),
            budget=r.budget,
            total_tokens=r.total_tokens,
            model=r.model,
            plan=PromptPlan.model_validate(r.plan),
            params=dict(r.params),
            usage=dict(r.usage),
            timings=timings,
            compactions=compactions,
            notes=list(r.notes),
            created_at=r.created_at,
        )


class Reply(BaseModel):
    """The outcome of one turn: the stored reply, its status and its trace."""

    model_config = ConfigDict(frozen=True)

    conversation_id: int
    message_id: int
    user_message_id: int
    text: str
    status: ReplyStatus = "complete"
    error: str | None = None
    trace: PromptTrace | None = None
    usage: Usage | None = None

    @property
    def plan(self) -> PromptPlan | None:
        return self.trace.plan if self.trace else None


class StreamChunk(BaseModel):
    """One item of a reply stream: a piece of text, a status event, or the final Reply.

    `event` is "text" for generated text, "compacting" when the turn starts
    folding old turns into the summary (a UI may say so), and "done" for the
    last item, whose `reply` holds the stored Reply.
    """

    model_config = ConfigDict(frozen=True)

    event: Literal["text", "compacting", "done"] = "text"
    text: str = ""
    reply: Reply | None = None

    @property
    def done(self) -> bool:
        return self.reply is not None


class TurnFailedError(ModelError):
    """The model failed mid-turn; the user message and an error reply (`reply`) are stored."""

    def __init__(self, message: str, reply: Reply) -> None:
        super().__init__(message)
        self.reply = reply


class ReplyStream:
    """An iterator of `StreamChunk`s for one turn; the last one carries the Reply.

    `cancel()` (from any thread) stops generation: the partial reply is stored
    with status "interrupted" and its trace, and the stream ends with it.
    Leaving the loop early and calling `close()` does the same.
    """

    def __init__(self, gen: Generator[StreamChunk, None, None], cancel: CancelToken) -> None:
        self._gen = gen
        self._cancel = cancel
        self.reply: Reply | None = None

    @property
    def cancel_token(self) -> CancelToken:
        return self._cancel

    def cancel(self) -> None:
        """Ask the generation to stop; the partial reply is stored as interrupted."""
        self._cancel.cancel()

    def __iter__(self) -> Iterator[StreamChunk]:
        return self

    def __next__(self) -> StreamChunk:
        chunk = next(self._gen)
        if chunk.reply is not None:
            self.reply = chunk.reply
        return chunk

    def close(self) -> None:
        """Stop early; whatever was generated is stored as an interrupted reply."""
        self._cancel.cancel()
        self._gen.close()

    def __enter__(self) -> ReplyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def text(self) -> str:
        """Consume the stream and return the reply's text."""
        for _ in self:
            pass
        return self.reply.text if self.reply else ""


class AsyncReplyStream:
    """The async twin of `ReplyStream`: the turn runs in a worker thread, never on the loop."""

    def __init__(self, sync: ReplyStream) -> None:
        self._sync = sync
        self._queue: asyncio.Queue[StreamChunk | BaseException | None] | None = None
        self._thread: threading.Thread | None = None
        self.reply: Reply | None = None

    def cancel(self) -> None:
        self._sync.cancel()

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self

    def _start(self) -> asyncio.Queue[StreamChunk | BaseException | None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StreamChunk | BaseException | None] = asyncio.Queue()

        def pump() -> None:
            try:
                for chunk in self._sync:
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except BaseException as exc:  # handed to the awaiting task, which re-raises it
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        self._thread = threading.Thread(target=pump, name="recursa-astream", daemon=True)
        self._thread.start()
        return queue

    async def __anext__(self) -> StreamChunk:
        if self._queue is None:
            self._queue = self._start()
        try:
            item = await self._queue.get()
        except asyncio.CancelledError:
            self._sync.cancel()  # the awaiting task went away: stop the model too
            raise
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        if item.reply is not None:
            self.reply = item.reply
        return item

    async def aclose(self) -> None:
        """Stop early and wait until the partial reply is stored."""
        self._sync.cancel()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)


# --- the agent ---------------------------------------------------------------------------


class Agent:
    """The dialogue manager over one store and one model runtime.

    `Agent(store, runtime, settings)` is the plain constructor; `runtime` may be
    None to load `settings.model` lazily on first use. `Agent.open(...)` builds
    both from a database URL and a model spec (or an already built runtime).
    The agent owns and closes both.
    """

    def __init__(
        self,
        store: Store,
        runtime: Runtime | None = None,
        settings: Settings | None = None,
        *,
        summarizer: Summarizer | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or Settings.load()
        self._runtime = runtime
        self._summarizer = summarizer
        self._progress = progress
        self._lock = threading.RLock()
        self._closed = False

    # construction and lifetime ----------------------------------------------------------

    @classmethod
    def open(
        cls,
        db_url: str | None = None,
        model: str | Runtime | None = None,
        *,
        settings: Settings | None = None,
        progress: ProgressCallback | None = None,
        summarizer: Summarizer | Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Agent:
        """Open the database (upgrading its schema) and prepare the model.

        `model` is a spec string (default: settings.model, "smollm2-135m") or a
        runtime object (e.g. a ScriptedRuntime, or a LocalRuntime already
        loaded). A spec is loaded lazily on first use; call `load_model()` to
        load it now with a progress callback. `summarizer` is a Summarizer object
        (e.g. ExtractiveSummarizer) or the summarizer settings section as a
        mapping. `overrides` are settings, flat
        (`max_prompt_tokens=512`, `policy="window"`) or nested
        (`budget={"reply_reserve": 128}`). Raises ConfigError for unknown or
        invalid settings.
        """
        from recursa.memory.store import Store

        if summarizer is not None and not hasattr(summarizer, "fold"):
            # `summarizer={"max_new_tokens": 64}` is the settings section, not an object.
            overrides["summarizer"] = summarizer
            summarizer = None
        base = settings.merged(overrides) if settings is not None else Settings.load(overrides)
        runtime: Runtime | None = None
        if isinstance(model, str):
            base = base.merged({"model": model})
        elif model is not None:
            if not isinstance(model, Runtime):
                raise ConfigError(
                    f"model must be a model spec string or a runtime, not {type(model).__name__}."
                )
            runtime = model
        store = Store.open(db_url if db_url is not None else base.db_url)
        return cls(store, runtime, base, summarizer=summarizer, progress=progress)

    @property
    def model_spec(self) -> str:
        """The model's spec or name (the runtime's name once loaded)."""
        return self._runtime.name if self._runtime is not None else self.settings.model

    @property
    def model_loaded(self) -> bool:
        return self._runtime is not None

    @property
    def runtime(self) -> Runtime:
        """The model runtime, loaded on first use."""
        return self.load_model()

    def load_model(self, progress: ProgressCallback | None = None) -> Runtime:
        """Load the model now (no-op when loaded); `progress(message, fraction)` reports steps."""
        if self._runtime is not None:
            return self._runtime
        with self._lock:
            if self._runtime is None:
                from recursa.agent.runtime.registry import open_runtime

                self._runtime = open_runtime(
                    self.settings.model,
                    options=self.settings.runtime.options(),
                    progress=progress or self._progress,
                )
            return self._runtime

    def close(self) -> None:
        """Close the runtime and the store."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._runtime is not None:
                self._runtime.close()
            if isinstance(self._summarizer, ModelSummarizer) and (
                self._summarizer.runtime is not self._runtime
            ):
                self._summarizer.runtime.close()
        finally:
            self.store.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # conversations ------------------------------------------------------------------------

    def create_conversation(
        self,
        title: str | None = None,
        system_prompt: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> int:
        """Create a conversation and return its id.

        `settings` override the agent's settings for this conversation (same
        names as `Agent.open`'s, e.g. {"policy": "window", "max_prompt_tokens": 512});
        they are validated now and stored with the conversation.
        """
        from recursa.agent.settings import nest_overrides

        overrides = nest_overrides(settings or {})
        self.settings.merged(overrides)  # validate before anything is written
        record = self.store.create_conversation(
            title=title, system_prompt=system_prompt, model=self.model_spec, settings=overrides
        )
        return record.id

    def get_conversation(self, conversation_id: int) -> ConversationInfo:
        """One conversation; NotFoundError when the id is unknown."""
        return ConversationInfo.from_record(self.store.get_conversation(conversation_id))

    def list_conversations(
        self, *, include_archived: bool = False, limit: int | None = None, offset: int = 0
    ) -> list[ConversationInfo]:
        """Conversations, most recently active first."""
        records = self.store.list_conversations(
            include_archived=include_archived, limit=limit, offset=offset
        )
        return [ConversationInfo.from_record(r) for r in records]

    def rename_conversation(self, conversation_id: int, title: str | None) -> ConversationInfo:
        return ConversationInfo.from_record(
            self.store.update_conversation(conversation_id, title=title)
        )

    def archive_conversation(self, conversation_id: int, archived: bool = True) -> ConversationInfo:
        """Archive (or with archived=False, unarchive) a conversation."""
        return ConversationInfo.from_record(
            self.store.update_conversation(conversation_id, archived=archived)
        )

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete a conversation with its messages, summaries and traces."""
        self.store.delete_conversation(conversation_id)

    def set_system_prompt(
        self, conversation_id: int, system_prompt: str | None
    ) -> ConversationInfo:
        """Change the conversation's system prompt (None: the default from settings)."""
        return ConversationInfo.from_record(
            self.store.update_conversation(conversation_id, system_prompt=system_prompt)
        )

    def set_conversation_settings(
        self, conversation_id: int, settings: Mapping[str, Any]
    ) -> ConversationInfo:
        """Replace the conversation's setting overrides (validated first)."""
        from recursa.agent.settings import nest_overrides

        overrides = nest_overrides(settings)
        self.settings.merged(overrides)
        return ConversationInfo.from_record(
            self.store.update_conversation(conversation_id, settings=overrides)
        )

    def settings_for(self, conversation_id: int) -> Settings:
        """The effective settings of a conversation (agent settings + its overrides)."""
        return self.settings.merged(self.store.get_conversation(conversation_id).settings)

    def budget_for(self, conversation_id: int) -> int:
        """The prompt budget of a conversation's next turn, in tokens (loads the model)."""
        s = self.settings_for(conversation_id)
        return compute_budget(self.runtime.context_window, s.budget)

    # messages -----------------------------------------------------------------------------

    def messages(
        self,
        conversation_id: int,
        *,
        limit: int | None = None,
        before_seq: int | None = None,
        after_seq: int = 0,
        newest_first: bool = False,
    ) -> list[MessageInfo]:
        """Stored messages in seq order (or newest first), with paging.

        `messages(cid, limit=50, newest_first=True)` gives the 50 most recent;
        pass `before_seq=<oldest seq you have>` for the page before them.
        """
        through = before_seq - 1 if before_seq is not None else None
        records = self.store.messages(
            conversation_id,
            after_seq=after_seq,
            through_seq=through,
            limit=limit,
            newest_first=newest_first,
        )
        return [MessageInfo.from_record(r) for r in records]

    def get_message(self, message_id: int) -> MessageInfo:
        return MessageInfo.from_record(self.store.get_message(message_id))

    def pin(self, message_id: int) -> MessageInfo:
        """Pin a message: it stays in every prompt's window even after compaction."""
        return MessageInfo.from_record(self.store.update_message(message_id, pinned=True))

    def unpin(self, message_id: int) -> MessageInfo:
        return MessageInfo.from_record(self.store.update_message(message_id, pinned=False))

    def rate(self, message_id: int, rating: int | None) -> MessageInfo:
        """Store a rating for a message (e.g. +1 / -1), or clear it with None."""
        return MessageInfo.from_record(self.store.update_message(message_id, rating=rating))

    def search(
        self, query: str, *, conversation_id: int | None = None, limit: int = 20
    ) -> list[SearchResult]:
        """Full-text search over messages and summaries (every word must appear)."""
        hits = self.store.search(query, conversation_id=conversation_id, limit=limit)
        return [SearchResult.from_hit(h) for h in hits]

    def summaries(self, conversation_id: int) -> list[SummaryInfo]:
        """The summary chain, latest first; each link says which seqs it covers."""
        return [SummaryInfo.from_record(s) for s in self.store.summary_chain(conversation_id)]

    # prompts and traces -------------------------------------------------------------------

    def preview_prompt(self, conversation_id: int, text: str) -> PromptPlan:
        """The PromptPlan the next turn would use for `text`; stores and generates nothing."""
        text = _check_text(text)
        conv = self.store.get_conversation(conversation_id)
        settings = self.settings.merged(conv.settings)
        return self._plan(conv, settings, self.runtime, NewText(text))

    def trace(self, message_id: int) -> PromptTrace:
        """The prompt trace of a reply (by the reply's message id)."""
        return PromptTrace.from_record(self.store.get_trace(message_id))

    def traces(self, conversation_id: int) -> list[PromptTrace]:
        """Every reply's trace in a conversation, oldest first."""
        return [PromptTrace.from_record(t) for t in self.store.traces(conversation_id)]

    def reconstruct_prompt(self, message_id: int) -> list[ChatMessage]:
        """Re-render a past reply's prompt from the stored records its trace names.

        Uses the summary, window, recalled and user messages by id, the system
        prompt and template version recorded in the plan. Equal to
        `trace(message_id).messages` unless a message was edited since.
        """
        trace = self.trace(message_id)
        plan = trace.plan
        templates = Templates.load(plan.template_version)
        summary = self.store.get_summary(plan.summary_id).content if plan.summary_id else None
        out: list[ChatMessage] = [
            {
                "role": "system",
                "content": templates.render(
                    "system", system_prompt=plan.system_prompt, summary=summary
                ),
            }
        ]
        for section in plan.sections:
            if section.kind == "window":
                records = {r.id: r for r in self.store.messages_by_ids(section.message_ids)}
                out.extend(
                    {"role": records[i].role, "content": records[i].content}  # type: ignore[misc]
                    for i in section.message_ids
                )
            elif section.kind == "recall":
                out.append({"role": "system", "content": self._render_recall(plan, section)})
            elif section.kind == "new":
                ids = section.message_ids
                content = (
                    self.store.get_message(ids[0]).content if ids else section.messages[0].content
                )
                out.append({"role": "user", "content": content})
        return out

    def _render_recall(self, plan: PromptPlan, section: PlanSection) -> str:
        from recursa.agent.plan import excerpt, format_date

        templates = Templates.load(plan.template_version)
        limit = plan.recall_excerpt_tokens or self.settings.recall.max_excerpt_tokens
        records = self.store.messages_by_ids(section.message_ids)
        runtime = self.runtime
        excerpts = [
            {
                "date": format_date(r.created_at),
                "role": r.role,
                "text": excerpt(runtime, r.content, limit),
            }
            for r in records
        ]
        return templates.render("recall", excerpts=excerpts)

    # turns ----------------------------------------------------------------------------------

    def send(
        self,
        conversation_id: int,
        text: str,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> Reply:
        """Run one turn and return the stored Reply.

        Raises InvalidInputError (empty text), BudgetError (the message cannot fit
        even alone; nothing is stored), NotFoundError (unknown conversation), and
        TurnFailedError when the model fails mid-reply (the user message and an
        error reply are stored; the conversation stays usable).
        """
        stream = self.stream(conversation_id, text, params=params, cancel=cancel)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    def stream(
        self,
        conversation_id: int,
        text: str,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> ReplyStream:
        """Run one turn as a stream of chunks; the last chunk carries the Reply.

        Input is validated and the user message committed before this returns,
        so errors such as BudgetError are raised here, not mid-iteration.
        """
        token = cancel or CancelToken()
        gen = self._turn(conversation_id, text, params=params, cancel=token)
        next(gen)  # run up to the committed user message (validation errors surface now)
        return ReplyStream(_skip_first(gen), token)

    def regenerate(
        self,
        conversation_id: int,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> Reply:
        """Answer the last user message again; earlier replies to it are marked superseded."""
        stream = self.stream_regenerate(conversation_id, params=params, cancel=cancel)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    def stream_regenerate(
        self,
        conversation_id: int,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> ReplyStream:
        """Streaming twin of `regenerate`."""
        token = cancel or CancelToken()
        gen = self._turn(conversation_id, None, params=params, cancel=token)
        next(gen)
        return ReplyStream(_skip_first(gen), token)

    async def asend(
        self,
        conversation_id: int,
        text: str,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> Reply:
        """`send` in a worker thread, so the event loop keeps running.

        Cancelling the awaiting task cancels the generation too (the partial
        reply is stored as interrupted).
        """
        token = cancel or CancelToken()
        try:
            return await asyncio.to_thread(
                self.send, conversation_id, text, params=params, cancel=token
            )
        except asyncio.CancelledError:
            token.cancel()
            raise

    async def astream(
        self,
        conversation_id: int,
        text: str,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> AsyncReplyStream:
        """`stream` for asyncio: `async for chunk in await agent.astream(cid, text)`."""
        sync = await asyncio.to_thread(
            self.stream, conversation_id, text, params=params, cancel=cancel
        )
        return AsyncReplyStream(sync)

    # compaction -----------------------------------------------------------------------------

    def compact(self, conversation_id: int, *, force: bool = False) -> CompactionReport:
        """Fold the window into the summary now if it is over its high-water mark.

        With force=True, fold everything but the newest exchange. Useful after
        an import (imports make no model calls). Returns what happened.
        """
        conv = self.store.get_conversation(conversation_id)
        settings = self.settings.merged(conv.settings)
        if settings.policy == "window":
            return CompactionReport(
                status="not_needed", when="explicit", notes=["policy 'window' keeps no summary"]
            )
        return self._compact(conv, settings, self.runtime, when="explicit", force=force)

    # import and export ---------------------------------------------------------------------

    def import_conversation(
        self, data: ConversationDocument | Mapping[str, Any] | str | bytes
    ) -> int:
        """Import a conversation document (see `recursa.agent.documents`); returns its id.

        The document is validated before anything is written; messages are
        written all or nothing. No model is called.
        """
        from recursa.memory.store import NewMessage

        doc = ConversationDocument.parse(data)
        items = [
            NewMessage(
                role=m.role,
                content=m.content,
                status=m.status,
                metadata=m.metadata or {},
                created_at=m.created_at,
                pinned=m.pinned,
            )
            for m in doc.messages
        ]
        conv = self.store.create_conversation(
            title=doc.title, system_prompt=doc.system_prompt, model=self.model_spec
        )
        try:
            self.store.append_messages(conv.id, items)
        except RecursaError:
            self.store.delete_conversation(conv.id)  # nothing half-written
            raise
        return conv.id

    def export_conversation(self, conversation_id: int) -> dict[str, Any]:
        """The conversation as a document that `import_conversation` reads back exactly."""
        export = self.store.export_conversation(conversation_id)
        return ConversationDocument.from_export(export).to_dict()

    # internals ------------------------------------------------------------------------------

    def _summarizer_for(self, settings: Settings, runtime: Runtime) -> Summarizer:
        if self._summarizer is not None:
            return self._summarizer
        with self._lock:
            if self._summarizer is None:
                if settings.summarizer.model and settings.summarizer.model != self.model_spec:
                    from recursa.agent.runtime.registry import open_runtime

                    runtime = open_runtime(
                        settings.summarizer.model,
                        options=settings.runtime.options(),
                        progress=self._progress,
                    )
                self._summarizer = ModelSummarizer(runtime, settings.summarizer)
            return self._summarizer

    def _system_prompt(self, conv: ConversationRecord, settings: Settings) -> str:
        return conv.system_prompt if conv.system_prompt is not None else settings.system_prompt

    def _costs(self, runtime: Runtime, records: Sequence[MessageRecord]) -> dict[int, int]:
        """Per-message prompt costs, from the store's cache; missing ones are counted and cached."""
        if not records:
            return {}
        tid = runtime.tokenizer_id
        cached = self.store.cached_token_counts([r.id for r in records], tid)
        missing = {
            r.id: message_cost(runtime, r.role, r.content) for r in records if r.id not in cached
        }
        if missing:
            self.store.store_token_counts(tid, missing)
            cached.update(missing)
        return cached

    def _window_records(
        self,
        conv: ConversationRecord,
        after_seq: int,
        budget: int,
        runtime: Runtime,
        exclude_id: int | None,
    ) -> tuple[list[MessageRecord], dict[int, int]]:
        """Usable messages after `after_seq`, newest pages first, until they overflow `budget`.

        Reading stops once the messages read cannot all fit, so a long
        uncompacted history costs one page, not a full scan.
        """
        out: list[MessageRecord] = []
        costs: dict[int, int] = {}
        through: int | None = None
        total = 0
        page = 64
        while True:
            batch = self.store.messages(
                conv.id, after_seq=after_seq, through_seq=through, limit=page, newest_first=True
            )
            if not batch:
                break
            usable_batch = [r for r in batch if usable(r) and r.id != exclude_id]
            costs.update(self._costs(runtime, usable_batch))
            out.extend(usable_batch)
            total += sum(costs[r.id] for r in usable_batch)
            through = batch[-1].seq - 1
            if total > budget or len(batch) < page or through <= after_seq:
                break
            page = min(page * 4, 4096)
        out.reverse()
        return out, costs

    def _plan(
        self,
        conv: ConversationRecord,
        settings: Settings,
        runtime: Runtime,
        new: NewText,
    ) -> PromptPlan:
        budget = compute_budget(runtime.context_window, settings.budget)
        policy = settings.policy
        templates = Templates.load(settings.summarizer.template_version)
        summary = self.store.latest_summary(conv.id) if policy != "window" else None
        covered = summary.covers_through_seq if summary else 0
        exclude_id = new.record.id if new.record is not None else None
        window, costs = self._window_records(conv, covered, budget, runtime, exclude_id)
        pinned: list[MessageRecord] = []
        recalled: list[MessageRecord] = []
        if summary is not None:
            pinned = [
                p for p in self.store.pinned_messages(conv.id) if p.seq <= covered and usable(p)
            ]
            costs.update(self._costs(runtime, pinned))
            if policy == "summary+recall":
                recalled = recall_candidates(
                    self.store,
                    conv.id,
                    new.content,
                    through_seq=covered,
                    limit=settings.recall.max_hits,
                    exclude={p.id for p in pinned},
                )

        def cost_of(r: MessageRecord) -> int:
            if r.id not in costs:
                costs.update(self._costs(runtime, [r]))
            return costs[r.id]

        return build_plan(
            counter=runtime,
            templates=templates,
            system_prompt=self._system_prompt(conv, settings),
            new=new,
            budget=budget,
            budget_settings=settings.budget,
            policy=policy,
            summary=summary,
            window=window,
            pinned=pinned,
            recall=recalled,
            recall_settings=settings.recall,
            cost_of=cost_of,
            conversation_id=conv.id,
            model=runtime.name,
            context_window=runtime.context_window,
        )

    def _compact(
        self,
        conv: ConversationRecord,
        settings: Settings,
        runtime: Runtime,
        *,
        when: Literal["before_reply", "after_reply", "explicit"],
        pending_tokens: int = 0,
        must_evict_through_seq: int = 0,
        force: bool = False,
        before_seq: int | None = None,
    ) -> CompactionReport:
        """Fold the oldest exchanges into a new summary when the decision says so."""
        job = self._compaction_job(
            conv,
            settings,
            runtime,
            pending_tokens=pending_tokens,
            must_evict_through_seq=must_evict_through_seq,
            force=force,
            before_seq=before_seq,
        )
        return self._run_compaction(job, when=when)

    def _compaction_job(
        self,
        conv: ConversationRecord,
        settings: Settings,
        runtime: Runtime,
        *,
        pending_tokens: int = 0,
        must_evict_through_seq: int = 0,
        force: bool = False,
        before_seq: int | None = None,
    ) -> _CompactionJob:
        """Read the window and decide (no model call, no write).

        `before_seq` keeps messages from that seq on out of the eviction (the
        turn's own user message).
        """
        start = time.perf_counter()
        budget = compute_budget(runtime.context_window, settings.budget)
        templates = Templates.load(settings.summarizer.template_version)
        system_text = templates.render(
            "system", system_prompt=self._system_prompt(conv, settings), summary=None
        )
        system_tokens = runtime.count_tokens([{"role": "system", "content": system_text}])
        flex = flexible_budget(budget, system_tokens)
        marks = water_marks(flex, settings.budget)
        latest = self.store.latest_summary(conv.id)
        covered = latest.covers_through_seq if latest else 0
        through = before_seq - 1 if before_seq is not None else None
        records = [
            r
            for r in self.store.messages(conv.id, after_seq=covered, through_seq=through)
            if usable(r)
        ]
        costs = self._costs(runtime, records)
        items = [WindowItem(r.id, r.seq, r.role, costs[r.id]) for r in records]
        if force and len(items) > 1:
            must_evict_through_seq = max(must_evict_through_seq, _last_exchange_start(items) - 1)
        decision = decide_compaction(
            items,
            marks,
            covered_through_seq=covered,
            pending_tokens=pending_tokens,
            must_evict_through_seq=must_evict_through_seq,
        )
        return _CompactionJob(
            conv=conv,
            settings=settings,
            runtime=runtime,
            latest=latest,
            records=records,
            decision=decision,
            summary_cap=max(16, int(settings.budget.summary_share * flex)),
            start=start,
        )

    def _run_compaction(
        self, job: _CompactionJob, *, when: Literal["before_reply", "after_reply", "explicit"]
    ) -> CompactionReport:
        """Summarize and store the job's eviction.

        Never raises for a model failure: the report says "failed" and the turn
        goes on with the plain window. A conflict (another process compacted
        first) is reported, not retried: its summary is as good as ours.
        """
        from recursa.memory.errors import CompactionConflict

        decision, latest, runtime = job.decision, job.latest, job.runtime
        start = job.start
        if not decision.needed:
            return CompactionReport(
                status="not_needed",
                when=when,
                window_tokens_before=decision.window_tokens_before,
                window_tokens_after=decision.window_tokens_after,
                duration_s=time.perf_counter() - start,
            )
        evicted_set = set(decision.evict_ids)
        turns = [Turn(r.role, r.content) for r in job.records if r.id in evicted_set]
        base = CompactionReport(
            status="failed",
            when=when,
            parent_id=latest.id if latest else None,
            covers_from_seq=decision.covers_from_seq,
            covers_through_seq=decision.covers_through_seq,
            evicted_ids=list(decision.evict_ids),
            window_tokens_before=decision.window_tokens_before,
            window_tokens_after=decision.window_tokens_after,
        )
        summarizer = self._summarizer_for(job.settings, runtime)
        try:
            result = summarizer.fold(
                latest.content if latest else None, turns, max_tokens=job.summary_cap
            )
        except RecursaError as exc:
            return base.model_copy(
                update={
                    "error": str(exc),
                    "duration_s": time.perf_counter() - start,
                    "notes": [f"summarization failed: {exc}"],
                }
            )
        tokens = runtime.count_text(result.content)
        if tokens > job.summary_cap:
            # Whatever the summarizer, the summary must fit its share of the budget.
            result.content = cut_to_tokens(runtime.count_text, result.content, job.summary_cap)
            result.notes.append(f"summary cut to its share of {job.summary_cap} tokens")
            tokens = runtime.count_text(result.content)
        try:
            record = self.store.add_summary(
                job.conv.id,
                content=result.content,
                covers_from_seq=decision.covers_from_seq,
                covers_through_seq=decision.covers_through_seq,
                parent_id=latest.id if latest else None,
                token_count=tokens,
                tokenizer_id=runtime.tokenizer_id,
                model=result.model,
                prompt_version=result.prompt_version,
                metadata={
                    "duration_s": round(time.perf_counter() - start, 4),
                    "summarizer_calls": result.calls,
                    "chunks": result.chunks,
                    "condensed": result.condensed,
                    "evicted": len(decision.evict_ids),
                    "notes": result.notes,
                },
            )
        except CompactionConflict as exc:
            return base.model_copy(
                update={
                    "status": "conflict",
                    "duration_s": time.perf_counter() - start,
                    "summarizer_calls": result.calls,
                    "notes": [f"another process compacted first; kept its summary ({exc})"],
                }
            )
        return base.model_copy(
            update={
                "status": "compacted",
                "summary_id": record.id,
                "summary_tokens": tokens,
                "summarizer_calls": result.calls,
                "duration_s": time.perf_counter() - start,
                "notes": list(result.notes),
            }
        )

    def _turn(
        self,
        conversation_id: int,
        text: str | None,
        *,
        params: GenerationParams | None,
        cancel: CancelToken,
    ) -> Generator[StreamChunk, None, None]:
        """One turn. The first (dummy) yield happens once the user message is committed."""
        t_start = time.perf_counter()
        conv = self.store.get_conversation(conversation_id)
        settings = self.settings.merged(conv.settings)
        runtime = self.runtime
        notes: list[str] = []
        compactions: list[CompactionReport] = []
        if text is not None:
            text = _check_text(text)
            # Refuse an oversized message before storing anything.
            self._check_fits(conv, settings, runtime, text)
            user = self.store.append_message(conversation_id, "user", text)
        else:
            user = self._prepare_regenerate(conversation_id)
            notes.append("regenerated reply")
        yield StreamChunk(event="text")  # consumed by stream(): the user message is committed

        timings: dict[str, Any] = {}
        t0 = time.perf_counter()
        plan = self._plan(conv, settings, runtime, NewText(user.content, user))
        if plan.dropped_ids and settings.policy != "window":
            # The window cannot fit: compact before generating, then plan again.
            yield StreamChunk(event="compacting")
            dropped = self.store.messages_by_ids(plan.dropped_ids)
            report = self._compact(
                conv,
                settings,
                runtime,
                when="before_reply",
                must_evict_through_seq=max(r.seq for r in dropped),
                before_seq=user.seq,
            )
            compactions.append(report)
            if report.status == "failed":
                notes.append(f"compaction failed, using the plain window: {report.error}")
            plan = self._plan(conv, settings, runtime, NewText(user.content, user))
        timings["plan_s"] = round(time.perf_counter() - t0, 6)
        if plan.dropped_ids:
            notes.append(f"{len(plan.dropped_ids)} window messages did not fit the budget")

        gen_params = params or settings.generation.params()
        room = runtime.context_window - plan.total_tokens - settings.budget.safety_margin
        if gen_params.max_new_tokens > room:
            gen_params = gen_params.model_copy(update={"max_new_tokens": max(1, room)})

        pieces: list[str] = []
        status: ReplyStatus = "complete"
        error: str | None = None
        usage: Usage | None = None
        failure: BaseException | None = None
        t_gen = time.perf_counter()
        try:
            tstream = runtime.stream(
                plan.messages, gen_params, cache_key=f"conv-{conversation_id}", cancel=cancel
            )
            try:
                for piece in tstream:
                    pieces.append(piece)
                    yield StreamChunk(text=piece)
                usage = tstream.usage
                if cancel.cancelled or (usage is not None and usage.finish_reason == "cancelled"):
                    status = "interrupted"
            finally:
                tstream.close()
        except GeneratorExit:
            # The consumer stopped reading: keep what was generated, marked interrupted.
            status = "interrupted"
            notes.append("the reader closed the stream before the reply ended")
            self._commit(
                conv,
                settings,
                runtime,
                user,
                plan,
                pieces,
                status,
                None,
                usage,
                gen_params,
                timings,
                t_gen,
                t_start,
                notes,
                compactions,
            )
            return
        except Exception as exc:  # recorded as an error reply, then re-raised typed below
            status = "error"
            error = f"{type(exc).__name__}: {exc}"
            failure = exc
            notes.append(f"generation failed: {error}")

        timings["generate_s"] = round(time.perf_counter() - t_gen, 6)
        if status != "error" and settings.policy != "window":
            # Fold old turns now, so the next turn's time to first token does not pay for it.
            pending = message_cost(runtime, "assistant", "".join(pieces)) if pieces else 0
            job = self._compaction_job(conv, settings, runtime, pending_tokens=pending)
            if job.decision.needed:
                try:
                    yield StreamChunk(event="compacting")
                except GeneratorExit:
                    # Closed after the text ended: keep the reply; compaction can wait.
                    self._commit(
                        conv,
                        settings,
                        runtime,
                        user,
                        plan,
                        pieces,
                        status,
                        error,
                        usage,
                        gen_params,
                        timings,
                        t_gen,
                        t_start,
                        notes,
                        compactions,
                    )
                    return
            report = self._run_compaction(job, when="after_reply")
            if report.status != "not_needed":
                compactions.append(report)
            if report.status == "failed":
                notes.append(
                    f"compaction failed, the next turn uses the plain window: {report.error}"
                )
            timings["compaction_after_s"] = round(report.duration_s, 6)
        reply = self._commit(
            conv,
            settings,
            runtime,
            user,
            plan,
            pieces,
            status,
            error,
            usage,
            gen_params,
            timings,
            t_gen,
            t_start,
            notes,
            compactions,
        )
        if failure is not None:
            raise TurnFailedError(
                f"The model failed while replying ({error}). The message was kept and the "
                "failure stored; send again to retry.",
                reply,
            ) from failure
        yield StreamChunk(event="done", reply=reply)

    def _commit(
        self,
        conv: ConversationRecord,
        settings: Settings,
        runtime: Runtime,
        user: MessageRecord,
        plan: PromptPlan,
        pieces: list[str],
        status: ReplyStatus,
        error: str | None,
        usage: Usage | None,
        params: GenerationParams,
        timings: dict[str, Any],
        t_gen: float,
        t_start: float,
        notes: list[str],
        compactions: list[CompactionReport],
    ) -> Reply:
        from recursa.memory.store import NewTrace

        text = "".join(pieces)
        timings.setdefault("generate_s", round(time.perf_counter() - t_gen, 6))
        if usage is not None and usage.time_to_first_token_s is not None:
            timings["ttft_s"] = usage.time_to_first_token_s
        timings["compactions"] = [c.model_dump(mode="json") for c in compactions]
        timings["turn_s"] = round(time.perf_counter() - t_start, 6)
        metadata: dict[str, Any] = {}
        if error:
            metadata["error"] = error
        trace = NewTrace(
            model=runtime.name,
            budget=plan.budget,
            total_tokens=plan.total_tokens,
            user_message_id=user.id,
            summary_id=plan.summary_id,
            recalled_ids=plan.recalled_ids,
            window_ids=plan.window_ids,
            plan=plan.model_dump(mode="json"),
            params=params.model_dump(mode="json"),
            usage=usage.model_dump(mode="json") if usage is not None else {},
            timings=timings,
            notes=list(notes),
        )
        message, trace_record = self.store.add_reply(
            conv.id, text, status=status, metadata=metadata, trace=trace
        )
        assert trace_record is not None
        return Reply(
            conversation_id=conv.id,
            message_id=message.id,
            user_message_id=user.id,
            text=text,
            status=status,
            error=error,
            trace=PromptTrace.from_record(trace_record),
            usage=usage,
        )

    def _check_fits(
        self, conv: ConversationRecord, settings: Settings, runtime: Runtime, text: str
    ) -> None:
        budget = compute_budget(runtime.context_window, settings.budget)
        templates = Templates.load(settings.summarizer.template_version)
        build_plan(
            counter=runtime,
            templates=templates,
            system_prompt=self._system_prompt(conv, settings),
            new=NewText(text),
            budget=budget,
            budget_settings=settings.budget,
            policy="window",
        )

    def _prepare_regenerate(self, conversation_id: int) -> MessageRecord:
        recent = self.store.messages(conversation_id, limit=64, newest_first=True)
        user = next((r for r in recent if r.role == "user"), None)
        if user is None:
            raise InvalidInputError(
                f"Conversation {conversation_id} has no user message to answer again."
            )
        for r in recent:
            if r.seq > user.seq and r.role == "assistant" and not r.metadata.get("superseded"):
                self.store.update_message(r.id, metadata={**r.metadata, "superseded": True})
        return user


@dataclass
class _CompactionJob:
    """A compaction decided but not yet run."""

    conv: ConversationRecord
    settings: Settings
    runtime: Runtime
    latest: SummaryRecord | None
    records: list[MessageRecord]
    decision: CompactionDecision
    summary_cap: int
    start: float


def _skip_first(gen: Generator[StreamChunk, None, None]) -> Generator[StreamChunk, None, None]:
    """Yield the turn's chunks, dropping empty placeholders."""
    try:
        for chunk in gen:
            if chunk.event == "text" and not chunk.text:
                continue
            yield chunk
    finally:
        gen.close()


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(f"The message must be text, not {type(text).__name__}.")
    if not text.strip():
        raise InvalidInputError("The message is empty; type something to send.")
    if "\x00" in text:
        raise InvalidInputError("The message contains a NUL character (U+0000); remove it.")
    return text


def _last_exchange_start(items: Sequence[WindowItem]) -> int:
    for item in reversed(items):
        if item.role == "user":
            return item.seq
    return items[-1].seq


# Re-exported for `from recursa.agent.agent import BudgetError`-style imports in callers.
_ = (BudgetError, NotFoundError)
