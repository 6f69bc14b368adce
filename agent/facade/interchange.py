"""The Agent's import and export methods: conversation documents in and out, training data out.

`InterchangeMixin` is one part of `recursa.agent.agent.Agent`; the document
format is `recursa.agent.interchange.documents`, the dataset
`recursa.agent.training.dataset`. Imports make no model calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from recursa.agent.boundary import ImportResult
from recursa.agent.checks import check_id
from recursa.agent.facade.base import AgentBase
from recursa.agent.interchange.documents import ConversationDocument

if TYPE_CHECKING:
    from recursa.agent.training.dataset import Example, ExportReport

__all__ = ["InterchangeMixin"]


class InterchangeMixin(AgentBase):
    """Conversations as documents (import, export) and replies as training examples."""

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
