"""The Agent's message methods: paging, pins, ratings, full-text search, the summary chain.

`MessagesMixin` is one part of `recursa.agent.agent.Agent`: what is stored in
a conversation, read through checked ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent.checks import check_count, check_id
from recursa.agent.facade.base import AgentBase

if TYPE_CHECKING:
    from recursa.agent.boundary import MessageInfo, SearchResult, SummaryInfo

__all__ = ["MessagesMixin"]


class MessagesMixin(AgentBase):
    """Stored messages and summaries, and the few changes a person makes to them."""

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
