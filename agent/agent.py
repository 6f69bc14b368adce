"""The dialogue manager: `Agent`, the one API the library, the CLI and the TUI all use.

A turn, as data flow: commit the user message; plan the prompt under an exact
token budget (system prompt with the running summary, the verbatim window,
recalled excerpts, the new message); compact first if the window cannot fit;
stream the reply; fold old turns into the summary right after the reply when
the next turn will need it; commit the reply and its prompt trace together.

`Agent` is the facade, and the only door to the store and the runtimes: a rule
(what may be rated, how an id is checked) lives once, here or behind it. This
module holds its construction and lifetime; its methods come in groups from the
mixins of `recursa.agent.facade` (conversations, messages, prompts, turns,
background work, semantic recall, composition, summaries, import and export),
over the state and lazily made collaborators of `facade.base`. The work lives
by concern: `turns` (the turn), `planning` (the prompt from the store),
`recall` (what older turns come back), `compaction` (folding into the
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

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from recursa.agent.boundary import (
    CompactionReport,
    ConversationInfo,
    MessageInfo,
    PromptTrace,
    Reply,
    ReplyStatus,
    SearchResult,
    StreamChunk,
    SummaryInfo,
)
from recursa.agent.compaction.background import BackgroundWork
from recursa.agent.errors import BudgetError, ConfigError, InvalidInputError, NotFoundError
from recursa.agent.facade.background import BackgroundMixin
from recursa.agent.facade.base import ProgressCallback, in_memory
from recursa.agent.facade.composition import CompositionMixin
from recursa.agent.facade.conversations import ConversationsMixin
from recursa.agent.facade.interchange import InterchangeMixin
from recursa.agent.facade.messages import MessagesMixin
from recursa.agent.facade.prompts import PromptsMixin
from recursa.agent.facade.recall import RecallMixin
from recursa.agent.facade.summaries import SummariesMixin
from recursa.agent.facade.turns import TurnsMixin
from recursa.agent.planning.plan import PlanSection, PromptPlan
from recursa.agent.runtime.protocol import Runtime
from recursa.agent.settings import Settings
from recursa.agent.streams import AsyncReplyStream, ReplyStream
from recursa.agent.summarize import ModelSummarizer, Summarizer
from recursa.agent.turns import TurnFailedError

if TYPE_CHECKING:
    from recursa.agent.recall.vectors import VectorIndex
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


class Agent(
    ConversationsMixin,
    MessagesMixin,
    PromptsMixin,
    TurnsMixin,
    BackgroundMixin,
    RecallMixin,
    CompositionMixin,
    SummariesMixin,
    InterchangeMixin,
):
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
        self._background_ok = not in_memory(store)
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


# The boundary models, streams and errors live in their own modules; these names stay
# importable from here (`from recursa.agent.agent import ReplyStream, BudgetError`).
_ = (BudgetError, InvalidInputError, NotFoundError, ReplyStatus)


# How long close() waits for a background fold to notice the closed runtime.
_BACKGROUND_CLOSE_S = 10.0
