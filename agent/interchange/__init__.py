"""Conversation files in and out: recursa's JSON document, JSONL, Markdown and ChatGPT exports.

Everything here is built on the conversation document of
`recursa.agent.documents`: readers turn a file into validated
`ConversationDocument`s before anything is written, and writers render the
documents `Agent.export_conversation` returns.

    from recursa.agent.interchange import read_conversations, import_documents

    batch = read_conversations(Path("conversations.json"))   # detects the format
    ids = import_documents(agent, batch.documents)            # all or nothing
"""

from recursa.agent.interchange.files import (
    EXPORT_FORMATS,
    IMPORT_FORMATS,
    ImportBatch,
    export_documents,
    import_documents,
    read_conversations,
    render_export,
)

__all__ = [
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "ImportBatch",
    "export_documents",
    "import_documents",
    "read_conversations",
    "render_export",
]
