"""Owner-scoped access to an Agent: the one place where a conversation belongs to an API key.

`Agent.scoped(owner)` returns a `ScopedAgent`. Conversations it creates or
imports are stored with `owner`; conversations of another owner (or of none)
are invisible to it: every method that takes an id raises the same
NotFoundError as for an id that does not exist, so a caller cannot even learn
that they exist. A scope with `sees_all` (an admin key, or a server without
keys, like the CLI) sees every conversation and creates with its own owner.

Besides the Agent's conversation methods, a scope offers what a server that
many clients share needs: continuing a conversation by the fingerprint of the
history a client re-sends (`claim_history`, `remember_history`) and a turn
lease held in the database (`take_lease`, `drop_lease`) that serialises turns
in one conversation across processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from recursa.agent.errors import NotFoundError
from recursa.memory.records import UNSET, Unset

if TYPE_CHECKING:
    from recursa.agent.agent import Agent
    from recursa.agent.boundary import (
        ConversationInfo,
        ImportResult,
        MessageInfo,
        PromptTrace,
        SearchResult,
        SummaryInfo,
    )
    from recursa.agent.interchange.documents import ConversationDocument
    from recursa.agent.planning.plan import PromptPlan
    from recursa.agent.runtime.protocol import CancelToken, GenerationParams
    from recursa.agent.settings import Settings
    from recursa.agent.streams import ReplyStream

__all__ = ["KEEP_KEY", "ScopedAgent"]

# `end_turn(..., history_key=KEEP_KEY)`: release the lease, leave the history key alone.
KEEP_KEY: Final = UNSET


def _hidden(conversation_id: int) -> NotFoundError:
    # Word for word the store's message for an unknown id: a hidden conversation
    # must be indistinguishable from a missing one.
    from recursa.memory.conversations import not_found

    return not_found(conversation_id)


@dataclass(frozen=True)
class ScopedAgent:
    """An Agent seen through one owner: their conversations only, unless `sees_all`."""

    agent: Agent
    owner: str | None
    sees_all: bool = False

    # visibility ----------------------------------------------------------------------------

    def check(self, conversation_id: int) -> None:
        """NotFoundError unless this scope may see the conversation.

        A scope that sees all leaves the unknown ids to the Agent's own methods,
        which raise the same NotFoundError, and so saves a query per call.
        """
        if self.sees_all:
            return
        if self.agent._store.conversation_owner(conversation_id) != self.owner:
            raise _hidden(conversation_id)

    # conversations ---------------------------------------------------------------------------

    def create_conversation(
        self,
        title: str | None = None,
        system_prompt: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> int:
        return self.agent.create_conversation(
            title=title, system_prompt=system_prompt, settings=settings, owner=self.owner
        )

    def get_conversation(self, conversation_id: int) -> ConversationInfo:
        self.check(conversation_id)
        return self.agent.get_conversation(conversation_id)

    def list_conversations(
        self, *, include_archived: bool = False, limit: int | None = None, offset: int = 0
    ) -> list[ConversationInfo]:
        if self.sees_all:
            return self.agent.list_conversations(
                include_archived=include_archived, limit=limit, offset=offset
            )
        return self.agent._store.list_conversations(
            include_archived=include_archived, limit=limit, offset=offset, owner=self.owner
        )

    def rename_conversation(self, conversation_id: int, title: str | None) -> ConversationInfo:
        self.check(conversation_id)
        return self.agent.rename_conversation(conversation_id, title)

    def archive_conversation(self, conversation_id: int, archived: bool = True) -> ConversationInfo:
        self.check(conversation_id)
        return self.agent.archive_conversation(conversation_id, archived)

    def delete_conversation(self, conversation_id: int) -> None:
        self.check(conversation_id)
        self.agent.delete_conversation(conversation_id)

    def settings_for(self, conversation_id: int) -> Settings:
        self.check(conversation_id)
        return self.agent.settings_for(conversation_id)

    # messages, search, prompts, summaries -------------------------------------------------

    def messages(
        self,
        conversation_id: int,
        *,
        limit: int | None = None,
        before_seq: int | None = None,
        after_seq: int = 0,
        newest_first: bool = False,
    ) -> list[MessageInfo]:
        self.check(conversation_id)
        return self.agent.messages(
            conversation_id,
            limit=limit,
            before_seq=before_seq,
            after_seq=after_seq,
            newest_first=newest_first,
        )

    def search(
        self, query: str, *, conversation_id: int | None = None, limit: int = 20
    ) -> list[SearchResult]:
        """Full-text search over the conversations this scope sees."""
        if conversation_id is not None:
            self.check(conversation_id)
        if self.sees_all or conversation_id is not None:
            return self.agent.search(query, conversation_id=conversation_id, limit=limit)
        # One indexed query per owned conversation: the full-text SQL has no owner
        # filter, and filtering the global top hits afterwards could miss them all.
        hits: list[SearchResult] = []
        for conv in self.list_conversations(include_archived=True):
            hits.extend(self.agent.search(query, conversation_id=conv.id, limit=limit))
        hits.sort(key=lambda hit: hit.rank, reverse=True)
        return hits[:limit]

    def summaries(self, conversation_id: int) -> list[SummaryInfo]:
        self.check(conversation_id)
        return self.agent.summaries(conversation_id)

    def preview_prompt(self, conversation_id: int, text: str) -> PromptPlan:
        self.check(conversation_id)
        return self.agent.preview_prompt(conversation_id, text)

    def trace(self, message_id: int) -> PromptTrace:
        trace = self.agent.trace(message_id)
        try:
            self.check(trace.conversation_id)
        except NotFoundError:
            # The store's wording for a message without a trace, so nothing leaks.
            raise NotFoundError(f"No prompt trace for message {message_id}.") from None
        return trace

    # import and export --------------------------------------------------------------------

    def export_conversation(self, conversation_id: int) -> dict[str, Any]:
        self.check(conversation_id)
        return self.agent.export_conversation(conversation_id)

    def import_conversation(
        self, data: ConversationDocument | Mapping[str, Any] | str | bytes
    ) -> int:
        return self.agent.import_conversation(data, owner=self.owner)

    def import_conversations(
        self,
        documents: Sequence[ConversationDocument | Mapping[str, Any]],
        *,
        source: str | None = None,
        again: bool = False,
    ) -> ImportResult:
        """`Agent.import_conversations`, owned by this scope, all or nothing.

        A re-import is recognised by content across every owner, and skipping
        one would name another owner's conversation: a scope that does not see
        all always imports its own copies.
        """
        return self.agent.import_conversations(
            documents, source=source, again=again or not self.sees_all, owner=self.owner
        )

    # turns --------------------------------------------------------------------------------

    def stream(
        self,
        conversation_id: int,
        text: str,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> ReplyStream:
        self.check(conversation_id)
        return self.agent.stream(conversation_id, text, params=params, cancel=cancel)

    # continuing by re-sent history, and the turn lease ---------------------------------------

    def claim_history(
        self, history_key: str, holder: str, seconds: float
    ) -> tuple[int, bool] | None:
        """This scope's conversation whose history key matches, taken for one turn (or None).

        The key is cleared as it is taken, so two requests re-sending the same
        history never continue one conversation twice; `end_turn` records the next
        key. The turn lease is taken in the same transaction when it is free:
        returns (conversation id, whether `holder` now holds the lease).
        """
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        return self.agent._store.claim_history(self.owner, history_key, lease=(holder, until))

    def take_lease(self, conversation_id: int, holder: str, seconds: float) -> bool:
        """Hold the conversation's turn lease for `seconds`; False while another holds it.

        The lease serialises turns in one conversation across server processes.
        """
        self.check(conversation_id)
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        return bool(self.agent._store.take_lease(conversation_id, holder, until))

    def end_turn(
        self, conversation_id: int, holder: str, history_key: str | None | Unset = KEEP_KEY
    ) -> bool:
        """Release the turn lease and record the history key that continues the conversation.

        One write; the key is recorded only if `holder` still held the lease.
        """
        return bool(self.agent._store.drop_lease(conversation_id, holder, history_key=history_key))

    def remember_history(self, conversation_id: int, history_key: str | None) -> None:
        """Record the fingerprint of the history a client will re-send to continue."""
        self.check(conversation_id)
        self.agent._store.set_history_key(conversation_id, history_key)
