"""The dialogue manager: `Agent`, the one API the library, the CLI and the TUI all use.

A turn, as data flow: commit the user message; plan the prompt under an exact
token budget (system prompt with the running summary, the verbatim window,
recalled excerpts, the new message); compact first if the window cannot fit;
stream the reply; fold old turns into the summary right after the reply when
the next turn will need it; commit the reply and its prompt trace together.

`Agent` is the facade, and the only door to the store and the runtimes: a rule
(what may be rated, how an id is checked) lives once, here or behind it. The
work lives by concern: `turns` (the turn), `planning` (the prompt from the
store), `recall` (what older turns come back), `compaction` (folding into the
summary), `streams` (ReplyStream, AsyncReplyStream), `boundary` (the boundary
models), `traces` (writing and re-rendering a prompt's trace), `compose`
(long-form writing), `training` (rating and exporting replies) and `database`
(the schema and location, for the `db` commands).

    from recursa.agent import Agent

    with Agent.open(max_prompt_tokens=1024) as agent:
        cid = agent.create_conversation(title="Notes")
        reply = agent.send(cid, "My sister is called Ada.")
        print(reply.text, reply.trace.total_tokens)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Unpack

from recursa.agent.boundary import (
    CompactionReport,
    ConversationInfo,
    ImportResult,
    MessageInfo,
    PromptTrace,
    Reply,
    ReplyStatus,
    SearchResult,
    StreamChunk,
    SummaryInfo,
)
from recursa.agent.checks import check_count, check_id, check_text
from recursa.agent.compaction.background import BackgroundWork, TaskKind
from recursa.agent.compaction.triggers import (
    background_scope,
    compact_in_background,
    compact_on_request,
)
from recursa.agent.compose import ComposeDeps, ComposeOptions, CompositionStream
from recursa.agent.compose import compose as start_composition
from recursa.agent.compose import resume_composition as continue_composition
from recursa.agent.compose.state import composition_text, stored_spec
from recursa.agent.errors import (
    BudgetError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
    RecursaError,
)
from recursa.agent.interchange.documents import ConversationDocument
from recursa.agent.planning.plan import NewText, PlanSection, PromptPlan, compute_budget
from recursa.agent.planning.prompt import plan_prompt
from recursa.agent.runtime.protocol import (
    CancelToken,
    ChatMessage,
    GenerationParams,
    Runtime,
    prefix_cache_key,
)
from recursa.agent.settings import Settings
from recursa.agent.streams import AsyncReplyStream, ReplyStream, skip_placeholders
from recursa.agent.summarize import ModelSummarizer, Summarizer, open_model_summarizer
from recursa.agent.traces import reconstruct_prompt
from recursa.agent.turn_lease import STORED_TTL, new_lease
from recursa.agent.turns import TurnFailedError, run_turn

if TYPE_CHECKING:
    from recursa.agent.compose.models import CompositionSpec
    from recursa.agent.digest import TextSummary
    from recursa.agent.recall.vectors import VectorIndex
    from recursa.agent.scoped import ScopedAgent
    from recursa.agent.training.dataset import Example, ExportReport
    from recursa.memory.records import ConversationKind
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
log = logging.getLogger(__name__)


class Agent:
    """The dialogue manager over one store and one model runtime.

    `Agent(store, runtime, settings)` is the plain constructor; `runtime` may be
    None to load `settings.model` lazily on first use. `Agent.open(...)` builds
    both from a database URL and a model spec (or an already built runtime).
    The agent owns and closes both. The store is private (`_store`, for the
    modules of `recursa.agent` only): callers go through the methods below.

    One Agent may be used from several threads at once, as the TUI does: reads
    and previews while a turn streams in a worker thread, or turns in other
    conversations. Each store call runs in its own session from a connection
    pool; message numbering and compaction stay consistent under concurrent
    writers; the model and the summarizer load once, under a lock; and the
    runtimes guard themselves (a local model runs one generation at a time
    but counts tokens beside it). Two exceptions: an in-memory SQLite database
    (`sqlite://`) shares one connection, so use it from one thread at a time;
    and `close()` must not race a turn that is still running.
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
        self._store = store
        self.settings = settings or Settings.load()
        self._runtime = runtime
        self._summarizer = summarizer
        self._progress = progress
        self._lock = threading.RLock()
        self._closed = False
        # Vector indexes for semantic recall, one per embedder spec, opened on first need.
        self._vectors: dict[str, VectorIndex | None] = {}
        # Compaction after a reply and prompt prefills run here, between turns. An
        # in-memory SQLite database shares one connection, so it gets none (see `_turn`).
        self._background = BackgroundWork({"compact": self._compact_now, "warm": self._warm_now})
        self._background_ok = not _in_memory(store)
        self._background_reports: dict[int, CompactionReport] = {}

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
    def database_url(self) -> str:
        """The database's URL with any password hidden, for messages and logs."""
        return self._store.url

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
                self._runtime = _open_runtime(
                    self.settings.model,
                    self.settings,
                    progress or self._progress,
                    purpose="model",
                )
            return self._runtime

    def close(self) -> None:
        """Close the runtime and the store."""
        if self._closed:
            return
        self._closed = True
        try:
            # Queued background work is dropped (the next turn redoes it); a running fold
            # ends at its next step once the runtime is closed, before the store closes.
            self._background.close(timeout=0)
            for index in self._vectors.values():
                if index is not None:
                    index.embedder.close()
            if self._runtime is not None:
                self._runtime.close()
            if isinstance(self._summarizer, ModelSummarizer) and (
                self._summarizer.runtime is not self._runtime
            ):
                self._summarizer.runtime.close()
            self._background.close(timeout=_BACKGROUND_CLOSE_S)
        finally:
            self._store.close()

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
        *,
        owner: str | None = None,
    ) -> int:
        """Create a conversation and return its id.

        `settings` override the agent's settings for this conversation (same
        names as `Agent.open`'s, e.g. {"policy": "window", "max_prompt_tokens": 512});
        they are validated now and stored with the conversation. `owner` marks it
        as one API key's (see `scoped`).
        """
        from recursa.agent.settings import nest_overrides

        overrides = nest_overrides(settings or {})
        self.settings.merged(overrides)  # validate before anything is written
        record = self._store.create_conversation(
            title=title,
            system_prompt=system_prompt,
            model=self.model_spec,
            settings=overrides,
            owner=owner,
        )
        return record.id

    def scoped(self, owner: str | None, *, sees_all: bool = False) -> ScopedAgent:
        """This agent seen through one owner (an API key's digest): their conversations only.

        `sees_all` (an admin key) sees every conversation. `scoped(None,
        sees_all=True)` is what a caller without keys gets: everything, as here.
        """
        from recursa.agent.scoped import ScopedAgent

        return ScopedAgent(self, owner, sees_all)

    def check_turn(
        self,
        text: str,
        *,
        conversation_id: int | None = None,
        system_prompt: str | None = None,
        title: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Check everything a turn needs before anything is written; store nothing.

        For a new conversation (`conversation_id` None) with this `title`,
        `system_prompt` and `settings`, or an existing one (whose system prompt
        `system_prompt` would replace): the message, the title, the system prompt,
        the settings, the model (loaded now) and that the system prompt and the
        message fit the prompt budget. Raises the error `send` would raise, each
        naming the input at fault, so a caller can create the conversation only
        once its first turn can run.
        """
        from recursa.agent.planning.prompt import check_fits_beside
        from recursa.agent.settings import nest_overrides
        from recursa.memory import validation

        text = check_text(text)
        validation.optional_text("The title", title)
        validation.optional_text("The system prompt", system_prompt)
        effective = self.settings.merged(nest_overrides(settings or {}))
        stored_system: str | None = None
        if conversation_id is not None:
            conv = self.get_conversation(conversation_id)
            effective = effective.merged(conv.settings)
            stored_system = conv.system_prompt
        runtime = self.load_model()
        system = system_prompt if system_prompt is not None else stored_system
        check_fits_beside(
            system if system is not None else effective.system_prompt, effective, runtime, text
        )

    def get_conversation(self, conversation_id: int) -> ConversationInfo:
        """One conversation; NotFoundError when the id is unknown."""
        conversation_id = check_id(conversation_id, "conversation_id")
        return self._store.get_conversation(conversation_id)

    def list_conversations(
        self,
        *,
        include_archived: bool = False,
        kind: ConversationKind | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ConversationInfo]:
        """Conversations, most recently active first; `kind` ("chat", "composition") filters."""
        return self._store.list_conversations(
            include_archived=include_archived, kind=kind, limit=limit, offset=offset
        )

    def rename_conversation(self, conversation_id: int, title: str | None) -> ConversationInfo:
        conversation_id = check_id(conversation_id, "conversation_id")
        return self._store.update_conversation(conversation_id, title=title)

    def archive_conversation(self, conversation_id: int, archived: bool = True) -> ConversationInfo:
        """Archive (or with archived=False, unarchive) a conversation."""
        conversation_id = check_id(conversation_id, "conversation_id")
        return self._store.update_conversation(conversation_id, archived=archived)

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete a conversation with its messages, summaries and traces."""
        conversation_id = check_id(conversation_id, "conversation_id")
        self._store.delete_conversation(conversation_id)

    def set_system_prompt(
        self, conversation_id: int, system_prompt: str | None
    ) -> ConversationInfo:
        """Change the conversation's system prompt (None: the default from settings)."""
        conversation_id = check_id(conversation_id, "conversation_id")
        return self._store.update_conversation(conversation_id, system_prompt=system_prompt)

    def set_conversation_settings(
        self, conversation_id: int, settings: Mapping[str, Any]
    ) -> ConversationInfo:
        """Replace the conversation's setting overrides (validated first)."""
        conversation_id = check_id(conversation_id, "conversation_id")
        from recursa.agent.settings import nest_overrides

        overrides = nest_overrides(settings)
        self.settings.merged(overrides)
        return self._store.update_conversation(conversation_id, settings=overrides)

    def settings_for(self, conversation_id: int) -> Settings:
        """The effective settings of a conversation (agent settings + its overrides)."""
        conversation_id = check_id(conversation_id, "conversation_id")
        return self.settings.merged(self._store.get_conversation(conversation_id).settings)

    def budget_for(self, conversation_id: int) -> int:
        """The prompt budget of a conversation's next turn, in tokens (loads the model)."""
        conversation_id = check_id(conversation_id, "conversation_id")
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
        conversation_id = check_id(conversation_id, "conversation_id")
        for name, value in (("before_seq", before_seq), ("after_seq", after_seq), ("limit", limit)):
            if value is not None:
                check_count(value, name)
        through = before_seq - 1 if before_seq is not None else None
        return self._store.messages(
            conversation_id,
            after_seq=after_seq,
            through_seq=through,
            limit=limit,
            newest_first=newest_first,
        )

    def get_message(self, message_id: int) -> MessageInfo:
        message_id = check_id(message_id, "message_id")
        return self._store.get_message(message_id)

    def pin(self, message_id: int) -> MessageInfo:
        """Pin a message: it stays in every prompt's window even after compaction."""
        message_id = check_id(message_id, "message_id")
        return self._store.update_message(message_id, pinned=True)

    def unpin(self, message_id: int) -> MessageInfo:
        message_id = check_id(message_id, "message_id")
        return self._store.update_message(message_id, pinned=False)

    def rate(self, message_id: int, good: bool | None) -> MessageInfo:
        """Rate a reply good (True) or bad (False), or clear its rating (None).

        Only assistant replies can be rated: they are what `export_dataset`
        trains on. InvalidInputError for any other message or verdict,
        NotFoundError for an unknown id. The stored rating is +1 or -1.
        """
        message_id = check_id(message_id, "message_id")
        from recursa.agent.training.rating import rate_reply

        return rate_reply(self._store, message_id, good)

    def search(
        self, query: str, *, conversation_id: int | None = None, limit: int = 20
    ) -> list[SearchResult]:
        """Full-text search over messages and summaries (every word must appear)."""
        if conversation_id is not None:
            conversation_id = check_id(conversation_id, "conversation_id")
        hits = self._store.search(query, conversation_id=conversation_id, limit=limit)
        return hits

    def summaries(self, conversation_id: int) -> list[SummaryInfo]:
        """The summary chain, latest first; each link says which seqs it covers."""
        conversation_id = check_id(conversation_id, "conversation_id")
        return self._store.summary_chain(conversation_id)

    # prompts and traces -------------------------------------------------------------------

    def preview_prompt(self, conversation_id: int, text: str) -> PromptPlan:
        """The PromptPlan the next turn would use for `text`; stores and generates nothing.

        `text` may be empty: the plan is then the prompt as it stands, with an
        empty new message (a budget bar shows it while nothing is typed).
        `send` still refuses empty text.
        """
        conversation_id = check_id(conversation_id, "conversation_id")
        text = check_text(text, allow_blank=True)
        conv = self._store.get_conversation(conversation_id)
        settings = self.settings.merged(conv.settings)
        return plan_prompt(
            self._store,
            conv,
            settings,
            self.runtime,
            NewText(text),
            semantic=self._vectors_for(settings),
        )

    def trace(self, message_id: int) -> PromptTrace:
        """The prompt trace of a reply (by the reply's message id)."""
        message_id = check_id(message_id, "message_id")
        return PromptTrace.from_record(self._store.get_trace(message_id))

    def traces(self, conversation_id: int) -> list[PromptTrace]:
        """Every reply's trace in a conversation, oldest first."""
        conversation_id = check_id(conversation_id, "conversation_id")
        return [PromptTrace.from_record(t) for t in self._store.traces(conversation_id)]

    def reconstruct_prompt(self, message_id: int) -> list[ChatMessage]:
        """Re-render a past reply's prompt from the stored records its trace names.

        Uses the summary, window, recalled and user messages by id, the system
        prompt and template version recorded in the plan. Equal to
        `trace(message_id).messages` unless a message was edited since.
        """
        message_id = check_id(message_id, "message_id")
        return reconstruct_prompt(
            self._store,
            self.trace(message_id),
            load_runtime=self.load_model,
            default_excerpt_tokens=self.settings.recall.max_excerpt_tokens,
        )

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
        conversation_id = check_id(conversation_id, "conversation_id")
        token = cancel or CancelToken()
        gen = self._turn(conversation_id, text, params=params, cancel=token)
        next(gen)  # run up to the committed user message (validation errors surface now)
        return ReplyStream(skip_placeholders(gen), token)

    def add_message(self, conversation_id: int, text: str) -> MessageInfo:
        """Store a user message now and answer it later (`answer` / `stream_answer`).

        For a message typed before the model is ready: it is committed at once,
        without loading the model, so it is never lost. Its size is checked
        against the budget when it is answered. InvalidInputError for empty text,
        NotFoundError for an unknown conversation.
        """
        text = check_text(text)
        self._store.get_conversation(conversation_id)
        # Claimed for this process until it is answered (or the process stops), so a
        # turn elsewhere does not take it for a message whose reply was lost.
        return self._store.append_message(
            conversation_id, "user", text, lease=new_lease(STORED_TTL)
        )

    def answer(
        self,
        conversation_id: int,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> Reply:
        """Reply to the conversation's last message, a user message stored by `add_message`.

        InvalidInputError when the last message is not an unanswered user message.
        """
        stream = self.stream_answer(conversation_id, params=params, cancel=cancel)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    def stream_answer(
        self,
        conversation_id: int,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> ReplyStream:
        """Streaming twin of `answer`."""
        token = cancel or CancelToken()
        gen = self._turn(conversation_id, None, params=params, cancel=token, answer_stored=True)
        next(gen)
        return ReplyStream(skip_placeholders(gen), token)

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
        conversation_id = check_id(conversation_id, "conversation_id")
        token = cancel or CancelToken()
        gen = self._turn(conversation_id, None, params=params, cancel=token)
        next(gen)
        return ReplyStream(skip_placeholders(gen), token)

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

    def window_notice(self) -> str | None:
        """One line when the model's context window is a guess (and the fix), else None.

        A server that does not say its window (and has not refused a prompt that
        stated it) is budgeted for a conservative default; never raises.
        """
        runtime = self._runtime
        try:
            guess = bool(getattr(runtime, "window_is_guess", False))
        except RecursaError as exc:
            # Only a notice: the turn that needs the server reports its failure.
            log.warning("Asking %s for its context window failed: %s", self.model_spec, exc)
            return None
        if runtime is None or not guess:
            return None
        return (
            f"The context window of {runtime.name} is a guess ({runtime.context_window} tokens): "
            "the server does not say its own. Set runtime.context_window "
            "(RECURSA_RUNTIME__CONTEXT_WINDOW) to the server's real window."
        )

    # background work ------------------------------------------------------------------------

    def warm(self, conversation_id: int) -> bool:
        """Prefill the conversation's prompt prefix in the background, so its next turn starts fast.

        The prompt as it stands (summary, kept recall blocks, window) is computed
        into the model's KV cache for this conversation; the next message then
        only prefills itself. Returns at once: True when the prefill was queued,
        False when there is nothing to do now (the model is not loaded yet, or
        its runtime keeps no cache, e.g. an HTTP server). NotFoundError for an
        unknown id. A turn sent meanwhile goes first and reuses what was done.
        """
        self._store.get_conversation(conversation_id)
        runtime = self._runtime
        if runtime is None or not hasattr(runtime, "warm") or not self._background_ok:
            return False
        self._background.submit("warm", conversation_id)
        return True

    def background_busy(self, conversation_id: int, kind: TaskKind | None = None) -> bool:
        """True while a compaction or prefill (`kind`: only that one) is queued or running."""
        return self._background.busy(conversation_id, kind)

    def wait_background(
        self, conversation_id: int | None = None, *, timeout: float | None = None
    ) -> bool:
        """Wait until background work (of one conversation, or all) is done; False on timeout."""
        return self._background.wait(conversation_id, timeout=timeout)

    def last_background_compaction(self, conversation_id: int) -> CompactionReport | None:
        """The report of the conversation's latest background compaction (None: none ran)."""
        return self._background_reports.get(conversation_id)

    def _compact_now(self, conversation_id: int) -> None:
        """The background worker's compaction task; then the new prompt prefix is prefilled."""
        runtime = self._runtime
        if self._closed or runtime is None:
            return
        conv = self._store.get_conversation(conversation_id)
        settings = self.settings.merged(conv.settings)
        report = compact_in_background(self._store, conv, settings, runtime, self._summarizer_for)
        if report is None:
            return
        self._background_reports[conversation_id] = report
        log.info(
            "Background compaction of conversation %s: %s in %.2f s",
            conversation_id,
            report.status,
            report.duration_s or 0.0,
        )
        if report.status == "compacted":
            # The summary changed the prompt's start: prefill the new one before the user sends.
            self._background.submit("warm", conversation_id)

    def _warm_now(self, conversation_id: int) -> None:
        """The background worker's prefill task (see `warm`)."""
        runtime = self._runtime
        warm = getattr(runtime, "warm", None)
        if self._closed or runtime is None or warm is None:
            return
        conv = self._store.get_conversation(conversation_id)
        settings = self.settings.merged(conv.settings)
        # The plan for an empty message: everything before the new message is the prefix
        # the next turn will share (recall, which depends on the message, is left out).
        plan = plan_prompt(self._store, conv, settings, runtime, NewText(""))
        with background_scope(runtime):
            warm(plan.messages[:-1], cache_key=prefix_cache_key(conversation_id))

    # semantic recall ------------------------------------------------------------------------

    def recall_notice(self) -> str | None:
        """One line saying why semantic recall is off (and the fix), or None when it is on.

        Without the embedding model (or with `recall.embedder = "none"`) recall
        uses full-text search alone; this never raises.
        """
        from recursa.agent.recall.embedders import embedder_notice

        return embedder_notice(self.settings.recall.embedder)

    def backfill_embeddings(
        self, conversation_id: int, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Embed every message of a conversation that has no vector yet; return how many.

        Run after an import so the first question does not pay for it
        (`progress(done, total)` reports batches). Returns 0 when semantic
        recall is off.
        """
        conversation_id = check_id(conversation_id, "conversation_id")
        conv = self._store.get_conversation(conversation_id)
        index = self._vectors_for(self.settings.merged(conv.settings))
        if index is None:
            return 0
        return index.backfill(conversation_id, progress)

    def _vectors_for(self, settings: Settings) -> VectorIndex | None:
        """The vector index for the settings' embedder (None: semantic recall is off)."""
        if settings.policy != "summary+recall":
            return None
        spec = settings.recall.embedder
        if spec in self._vectors:
            return self._vectors[spec]
        with self._lock:
            if spec not in self._vectors:
                from recursa.agent.recall.embedders import open_embedder
                from recursa.agent.recall.vectors import VectorIndex

                embedder = open_embedder(spec, options=settings.runtime.options())
                self._vectors[spec] = (
                    VectorIndex(self._store, embedder) if embedder is not None else None
                )
            return self._vectors[spec]

    # long-form composition ------------------------------------------------------------------

    def compose(
        self,
        prompt: str | None = None,
        # mypy sees recursa.* imports as Any (the package-dir layout), so not the TypedDict.
        **options: Unpack[ComposeOptions],  # type: ignore[misc]
    ) -> CompositionStream:
        """Grow a text past the context window, step by step, from its own summary.

        Each step's prompt is the instructions, the summary of the text before
        the verbatim tail, and the tail, under the same budget as chat. The
        composition is stored as a conversation of kind "composition", one
        message per step, and streams `CompositionChunk`s whose last one carries
        the result and its stop reason. The options (`target_tokens` is required)
        are `recursa.agent.compose.ComposeOptions`.
        """
        return start_composition(self._compose_deps(), prompt, **options)

    def resume_composition(
        self,
        composition_id: int,
        *,
        target_tokens: int | None = None,
        cancel: CancelToken | None = None,
    ) -> CompositionStream:
        """Continue a stored composition from its last stored step."""
        composition_id = check_id(composition_id, "composition_id")
        return continue_composition(
            self._compose_deps(), composition_id, target_tokens=target_tokens, cancel=cancel
        )

    def composition(self, composition_id: int) -> CompositionSpec | None:
        """A composition's stored parameters, its last stop reason included.

        None when they are missing or unreadable (`resume_composition` then says
        why). NotFoundError for an unknown id; InvalidInputError when the
        conversation is not a composition.
        """
        composition_id = check_id(composition_id, "composition_id")
        conv = self._store.get_conversation(composition_id)
        if conv.kind != "composition":
            raise InvalidInputError(
                f"Conversation {composition_id} is a {conv.kind}, not a composition."
            )
        return stored_spec(self._store, composition_id)

    def composition_text(self, composition_id: int) -> str:
        """A stored composition's document: its opening followed by every stored step."""
        composition_id = check_id(composition_id, "composition_id")
        return composition_text(self._store, composition_id)

    def _compose_deps(self) -> ComposeDeps:
        return ComposeDeps(
            store=self._store,
            settings=self.settings,
            load_runtime=self.load_model,
            summarizer=self._injected_summarizer(),
        )

    def _injected_summarizer(self) -> Summarizer | None:
        # A summarizer given by the caller (a test's extractive one, say) serves
        # compositions too; the chat ModelSummarizer does not, because its wording
        # is for dialogue: composition builds its own with prose wording.
        if self._summarizer is None or isinstance(self._summarizer, ModelSummarizer):
            return None
        return self._summarizer

    # documents ------------------------------------------------------------------------------

    def summarize_text(
        self,
        text: str,
        *,
        max_tokens: int = 256,
        progress: ProgressCallback | None = None,
        chunk_tokens: int | None = None,
    ) -> TextSummary:
        """Summarize a document of any length into at most `max_tokens` of the model's tokens.

        The text is split into chunks that fit the summarizer's requests, each
        chunk is summarized, then the summaries are summarized, recursively,
        until one is left (see `recursa.agent.digest`). The result says how many
        chunks and levels it took and carries the tree, each node with the
        character span of the source it covers. With the default summarizer
        (method "facts") the model is called only for what does not fit.
        `progress(message, fraction)` reports each step. Nothing is stored.
        """
        from recursa.agent.digest import summarize_document

        if not isinstance(text, str):
            raise InvalidInputError(f"text must be a string, not {type(text).__name__}.")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise InvalidInputError("max_tokens must be a whole number of tokens, e.g. 256.")
        runtime = self.runtime
        summarizer = self._summarizer_for(self.settings, runtime)
        if not callable(getattr(summarizer, "summarize_text", None)):
            raise ConfigError(
                f"The summarizer {summarizer.name!r} folds conversations only; it cannot "
                "summarize a document. Use the default summarizer (summarizer.method)."
            )
        return summarize_document(
            text,
            summarizer,
            count_text=runtime.count_text,
            max_tokens=max_tokens,
            model=runtime.name,
            chunk_tokens=chunk_tokens,
            progress=progress,
        )

    # compaction -----------------------------------------------------------------------------

    def compact(self, conversation_id: int, *, force: bool = False) -> CompactionReport:
        """Fold the window into the summary now if it is over its high-water mark.

        With force=True, fold everything but the newest exchange. Useful after
        an import (imports make no model calls). Returns what happened.
        """
        conversation_id = check_id(conversation_id, "conversation_id")
        conv = self._store.get_conversation(conversation_id)
        settings = self.settings.merged(conv.settings)
        return compact_on_request(
            self._store, conv, settings, self.runtime, self._summarizer_for, force=force
        )

    # import and export ---------------------------------------------------------------------

    def import_conversation(
        self,
        data: ConversationDocument | Mapping[str, Any] | str | bytes,
        *,
        owner: str | None = None,
    ) -> int:
        """Import a conversation document (see `recursa.agent.interchange`); returns its id.

        The document is validated before anything is written; the conversation and
        its messages are written in one transaction. No model is called. The
        conversation's last activity is its last message's time, so an old
        conversation lists as old. The same document imported again makes another
        copy (`import_conversations` skips re-imports unless asked).
        """
        doc = ConversationDocument.parse(data)
        return self.import_conversations([doc], again=True, owner=owner).imported_ids[0]

    def import_conversations(
        self,
        documents: Sequence[ConversationDocument | Mapping[str, Any]],
        *,
        source: str | None = None,
        again: bool = False,
        owner: str | None = None,
    ) -> ImportResult:
        """Import several documents in one transaction: every new one, or none at all.

        A document whose content (its fingerprint: title, system prompt and
        messages) was imported before, and whose conversation is still stored, is
        skipped and reported in `skipped`; with `again=True` it is imported as a
        new copy. `source` (a file name) is recorded with each conversation, and
        `owner` (an API key's digest, see `scoped`) owns them.
        Everything is validated before anything is written; a crash or a kill
        midway leaves none of the batch behind.
        """
        from recursa.memory.store import NewConversation, NewMessage

        docs = [ConversationDocument.parse(d) for d in documents]
        prints = [d.fingerprint() for d in docs]
        seen = {} if again else self._store.imported_fingerprints(prints)
        skipped: dict[int, int] = {}
        batch: list[NewConversation] = []
        first_of: dict[str, int] = {}  # fingerprint -> its position in `batch`
        repeats: dict[int, str] = {}
        for index, (doc, fingerprint) in enumerate(zip(docs, prints, strict=True)):
            if fingerprint in seen:
                skipped[index] = seen[fingerprint]
                continue
            if not again and fingerprint in first_of:
                repeats[index] = fingerprint  # the same document twice in one file: one copy
                continue
            first_of[fingerprint] = len(batch)
            batch.append(
                NewConversation(
                    title=doc.title,
                    system_prompt=doc.system_prompt,
                    model=self.model_spec,
                    fingerprint=fingerprint,
                    source=source,
                    owner=owner,
                    messages=[
                        NewMessage(
                            role=m.role,
                            content=m.content,
                            status=m.status,
                            metadata=m.metadata or {},
                            created_at=m.created_at,
                            pinned=m.pinned,
                        )
                        for m in doc.messages
                    ],
                )
            )
        ids = self._store.import_conversations(batch) if batch else []
        skipped.update({index: ids[first_of[fp]] for index, fp in repeats.items()})
        return ImportResult(imported_ids=ids, skipped=dict(sorted(skipped.items())))

    def export_dataset(
        self,
        *,
        conversation_ids: Sequence[int] | None = None,
        since: datetime | date | None = None,
        only_rated: bool = False,
        include_failed: bool = False,
        include_bad: bool = False,
        dedupe: bool = True,
        report: ExportReport | None = None,
    ) -> list[Example]:
        """Training examples, one per stored reply: the prompt as the model saw it, then the reply.

        See `recursa.agent.training.dataset.export_dataset` for the options;
        pass an `ExportReport` to learn how many replies each rule dropped.
        """
        from recursa.agent.training.dataset import export_dataset

        if conversation_ids is not None:
            conversation_ids = [check_id(cid, "conversation id") for cid in conversation_ids]
        return export_dataset(
            self._store,
            conversation_ids=conversation_ids,
            since=since,
            only_rated=only_rated,
            include_failed=include_failed,
            include_bad=include_bad,
            dedupe=dedupe,
            report=report,
        )

    def export_conversation(self, conversation_id: int) -> dict[str, Any]:
        """The conversation as a document that `import_conversation` reads back exactly."""
        conversation_id = check_id(conversation_id, "conversation_id")
        export = self._store.export_conversation(conversation_id)
        return ConversationDocument.from_export(export).to_dict()

    # internals ------------------------------------------------------------------------------

    def _summarizer_for(self, settings: Settings, runtime: Runtime) -> Summarizer:
        """The agent's summarizer, made on first need (a separate model loads only then)."""
        if self._summarizer is not None:
            return self._summarizer
        with self._lock:
            if self._summarizer is None:
                # A separate summarizer runtime is closed with the summarizer (see close()).
                self._summarizer, _ = open_model_summarizer(
                    settings, runtime, self.model_spec, progress=self._progress
                )
            return self._summarizer

    def _turn(
        self,
        conversation_id: int,
        text: str | None,
        *,
        params: GenerationParams | None,
        cancel: CancelToken,
        answer_stored: bool = False,
    ) -> Generator[StreamChunk, None, None]:
        turn = run_turn(
            self._store,
            self.settings,
            self.load_model,
            self._summarizer_for,
            conversation_id,
            text,
            params=params,
            cancel=cancel,
            vectors_for=self._vectors_for,
            background=_TurnBackground(self._background) if self._background_ok else None,
            answer_stored=answer_stored,
        )
        try:
            yield from turn
        except TurnFailedError as exc:
            cause = exc.__cause__
            log.error(
                "Reply in conversation %s failed (model %s): %s",
                conversation_id,
                self.model_spec,
                f"{type(cause).__name__}: {cause}" if cause is not None else exc,
            )
            raise


# The boundary models, streams and errors live in their own modules; these names stay
# importable from here (`from recursa.agent.agent import ReplyStream, BudgetError`).
_ = (BudgetError, InvalidInputError, NotFoundError, ReplyStatus)


# How long close() waits for a background fold to notice the closed runtime.
_BACKGROUND_CLOSE_S = 10.0


class _TurnBackground:
    """What a turn sees of the background work: is a compaction under way, queue one."""

    def __init__(self, work: BackgroundWork) -> None:
        self._work = work

    def busy(self, conversation_id: int) -> bool:
        return self._work.busy(conversation_id, "compact")

    def compact_later(self, conversation_id: int) -> None:
        self._work.submit("compact", conversation_id)


def _in_memory(store: Store) -> bool:
    """True for an in-memory SQLite store (one shared connection: no second thread)."""
    from recursa.memory.engine import sqlite_path
    from sqlalchemy.engine import make_url

    return store.dialect == "sqlite" and sqlite_path(make_url(store.url)) is None


def _open_runtime(
    spec: str, settings: Settings, progress: ProgressCallback | None, *, purpose: str
) -> Runtime:
    """Load a runtime by spec; the load is logged, a failure with the spec before it is raised."""
    from recursa.agent.runtime.registry import open_runtime

    start = time.perf_counter()
    try:
        runtime = open_runtime(spec, options=settings.runtime.options(), progress=progress)
    except RecursaError as exc:
        log.error("Loading the %s %r failed: %s", purpose, spec, exc)
        raise
    except Exception:
        log.exception("Loading the %s %r failed unexpectedly", purpose, spec)
        raise
    log.info("Loaded the %s %r in %.2f s", purpose, spec, time.perf_counter() - start)
    return runtime
