"""A conversation document rendered as Markdown, for reading and sharing (not for import)."""

from __future__ import annotations

from datetime import UTC, datetime

from recursa.agent.interchange.documents import ConversationDocument


def render_markdown(doc: ConversationDocument, *, conversation_id: int | None = None) -> str:
    """Title, system prompt, then one section per message with its role, time and status."""
    title = doc.title or (f"Conversation {conversation_id}" if conversation_id else "Conversation")
    out = [f"# {title}", ""]
    if conversation_id is not None:
        out += [f"*recursa conversation {conversation_id}, {len(doc.messages)} messages*", ""]
    if doc.system_prompt:
        out += ["> **System prompt:** " + doc.system_prompt.replace("\n", "\n> "), ""]
    for seq, message in enumerate(doc.messages, start=1):
        heading = f"## {seq}. {message.role}"
        if message.created_at is not None:
            heading += f" · {_when(message.created_at)}"
        if message.status != "complete":
            heading += f" · {message.status}"
        if message.pinned:
            heading += " · pinned"
        out += [heading, "", message.content, ""]
    return "\n".join(out).rstrip() + "\n"


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
