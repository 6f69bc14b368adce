"""The Agent's background work: prefills and compactions that run between turns.

`BackgroundMixin` is one part of `recursa.agent.agent.Agent`: the public
methods (`warm`, `background_busy`, `wait_background`,
`last_background_compaction`) and the two tasks the agent's `BackgroundWork`
runs. `TurnBackground` is what a turn sees of that worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent.compaction.triggers import background_scope, compact_in_background
from recursa.agent.errors import RecursaError
from recursa.agent.facade.base import AgentBase, log
from recursa.agent.planning.plan import NewText
from recursa.agent.planning.prompt import plan_prompt
from recursa.agent.runtime.protocol import prefix_cache_key

if TYPE_CHECKING:
    from recursa.agent.boundary import CompactionReport
    from recursa.agent.compaction.background import BackgroundWork, TaskKind
    from recursa.agent.settings import Settings

__all__ = ["BackgroundMixin", "TurnBackground"]


class BackgroundMixin(AgentBase):
    """Work queued for after a reply or before the next message, one worker per agent."""

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
        """The worker's task after a reply: the turn's vectors, the fold, then the new prefix."""
        runtime = self._runtime
        if self._closed or runtime is None:
            return
        conv = self._store.get_conversation(conversation_id)
        settings = self.settings.merged(conv.settings)
        self._embed_missing(conversation_id, settings)
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

    def _embed_missing(self, conversation_id: int, settings: Settings) -> None:
        """Store the vectors the last turn's messages lack, as the turn itself would have.

        The newest four messages cover the turn even when the next message is
        already stored; older messages without vectors (an import) are left to
        their first search or `backfill_embeddings`. A failure only defers them.
        """
        try:
            index = self._vectors_for(settings)
            if index is not None:
                recent = self._store.messages(conversation_id, limit=4, newest_first=True)
                index.embed_messages(recent)
        except RecursaError as exc:
            log.warning(
                "Embedding the new messages of conversation %s failed, deferred to their "
                "first search: %s",
                conversation_id,
                exc,
            )

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


class TurnBackground:
    """What a turn sees of the background work: is a compaction under way, queue one."""

    def __init__(self, work: BackgroundWork) -> None:
        self._work = work

    def busy(self, conversation_id: int) -> bool:
        return self._work.busy(conversation_id, "compact")

    def compact_later(self, conversation_id: int) -> None:
        self._work.submit("compact", conversation_id)
