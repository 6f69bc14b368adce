"""The Agent's semantic-recall methods: whether it is on (and the fix), embedding backfills.

`RecallMixin` is one part of `recursa.agent.agent.Agent`; the vector index
itself is made on first need by `AgentBase._vectors_for`.
"""

from __future__ import annotations

from collections.abc import Callable

from recursa.agent.checks import check_id
from recursa.agent.facade.base import AgentBase

__all__ = ["RecallMixin"]


class RecallMixin(AgentBase):
    """Semantic recall as a person sees it: a notice when it is off, a backfill after imports."""

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
