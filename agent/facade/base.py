"""The state every part of the Agent facade shares, and the collaborators made on first need.

`AgentBase` declares the attributes `Agent.__init__` sets (the store, the
settings, the runtime, the summarizer, the background worker ...) so that each
mixin in `recursa.agent.facade` is typed on its own, and it holds what several
mixins call: the model loaded on first use, the summarizer made on first need
and the vector index for semantic recall. It also provides the facade's logger
and the helpers that construction uses (`in_memory`, `open_runtime_logged`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from recursa.agent.errors import RecursaError
from recursa.agent.summarize import Summarizer, open_model_summarizer

if TYPE_CHECKING:
    from recursa.agent.boundary import CompactionReport
    from recursa.agent.compaction.background import BackgroundWork
    from recursa.agent.recall.vectors import VectorIndex
    from recursa.agent.runtime.protocol import Runtime
    from recursa.agent.settings import Settings
    from recursa.memory.store import Store

__all__ = ["AgentBase", "ProgressCallback", "in_memory", "log", "open_runtime_logged"]

ProgressCallback = Callable[[str, float | None], None]
# The facade's records keep the name of its public module, whichever part writes them:
# log filters and the log file's lines read as they did when the facade was one module.
log = logging.getLogger("recursa.agent.agent")


class AgentBase:
    """The attributes of an Agent, and the model, summarizer and vector index it makes lazily.

    Only declarations here: `recursa.agent.agent.Agent.__init__` sets them.
    """

    _store: Store
    settings: Settings
    _runtime: Runtime | None
    _summarizer: Summarizer | None
    _progress: ProgressCallback | None
    _lock: threading.RLock
    _closed: bool
    # Vector indexes for semantic recall, one per embedder spec, opened on first need.
    _vectors: dict[str, VectorIndex | None]
    _background: BackgroundWork
    _background_ok: bool
    _background_reports: dict[int, CompactionReport]

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
                self._runtime = open_runtime_logged(
                    self.settings.model,
                    self.settings,
                    progress or self._progress,
                    purpose="model",
                )
            return self._runtime

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


def in_memory(store: Store) -> bool:
    """True for an in-memory SQLite store (one shared connection: no second thread)."""
    from recursa.memory.engine import sqlite_path
    from sqlalchemy.engine import make_url

    return store.dialect == "sqlite" and sqlite_path(make_url(store.url)) is None


def open_runtime_logged(
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
