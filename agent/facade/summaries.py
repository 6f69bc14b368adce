"""The Agent's summarizing on request: compact a conversation now, summarize a document.

`SummariesMixin` is one part of `recursa.agent.agent.Agent`; both use the
agent's summarizer, made on first need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent.checks import check_id
from recursa.agent.compaction.triggers import compact_on_request
from recursa.agent.errors import ConfigError, InvalidInputError
from recursa.agent.facade.base import AgentBase, ProgressCallback

if TYPE_CHECKING:
    from recursa.agent.boundary import CompactionReport
    from recursa.agent.digest import TextSummary

__all__ = ["SummariesMixin"]


class SummariesMixin(AgentBase):
    """Summaries asked for: of a conversation's window, or of any text."""

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
