"""Conversation files in and out: recursa's JSON document, JSONL, Markdown and ChatGPT exports.

Everything here is built on the conversation document of
`recursa.agent.interchange.documents`: readers turn a file into validated
`ConversationDocument`s before anything is written, and writers render the
documents `Agent.export_conversation` returns.

    from recursa.agent.interchange import read_conversations, import_documents

    batch = read_conversations(Path("conversations.json"))   # detects the format
    result = import_documents(agent, batch.documents)         # all or nothing
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent._lazy import lazy_exports

_EXPORTS = {
    name: "recursa.agent.interchange.files"
    for name in (
        "EXPORT_FORMATS",
        "IMPORT_FORMATS",
        "ImportBatch",
        "export_documents",
        "import_documents",
        "read_conversations",
        "render_export",
    )
}
_EXPORTS.update(
    {
        "ConversationDocument": "recursa.agent.interchange.documents",
        "DocumentMessage": "recursa.agent.interchange.documents",
    }
)
__all__ = [
    "ConversationDocument",
    "DocumentMessage",
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "ImportBatch",
    "export_documents",
    "import_documents",
    "read_conversations",
    "render_export",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from recursa.agent.interchange.documents import ConversationDocument, DocumentMessage
    from recursa.agent.interchange.files import (
        EXPORT_FORMATS,
        IMPORT_FORMATS,
        ImportBatch,
        export_documents,
        import_documents,
        read_conversations,
        render_export,
    )
