"""ChatGPT data exports: flatten each conversation of `conversations.json` to its current thread.

A ChatGPT export stores a conversation as a tree: `mapping` maps node ids to
`{"message": {...} | null, "parent": id | null, "children": [ids]}`, and
`current_node` names the last node of the thread the user last saw. Editing a
message or regenerating a reply adds a sibling branch, so the tree holds every
version. recursa keeps one linear thread per conversation, so the import walks
from `current_node` up the `parent` links to the root and keeps that path, in
order; the other branches are left out. (When `current_node` is missing, the
walk starts from the leaf reached by always taking the last child.)

On that path a node becomes a message unless it is:

- a node without a message (the tree's root),
- marked hidden (`metadata.is_visually_hidden_from_conversation`), such as the
  empty system message every conversation starts with,
- a tool's output (`author.role == "tool"`) or a call to a tool (an assistant
  message whose `recipient` is not "all"),
- not text (content types other than text, multimodal_text and code, e.g.
  model reasoning, browsing results, custom-instruction contexts),
- empty once its text parts are joined.

Non-text parts of a multimodal message (images, files) become "[image]" /
"[attachment]" placeholders. Each message keeps the original ids in
`metadata["chatgpt"]` (conversation id, node id, parent node id, model slug).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from recursa.agent.errors import InvalidInputError
from recursa.agent.interchange.documents import (
    EARLIEST,
    LATEST,
    ConversationDocument,
    DocumentMessage,
)

TEXT_TYPES = frozenset({"text", "multimodal_text", "code"})
ROLES = frozenset({"user", "assistant", "system"})


def looks_like_chatgpt(data: Any) -> bool:
    """Whether parsed JSON has the shape of a ChatGPT export (a list of trees, or one tree)."""
    if isinstance(data, Mapping):
        return "mapping" in data
    return (
        isinstance(data, list)
        and bool(data)
        and isinstance(data[0], Mapping)
        and "mapping" in data[0]
    )


def parse_chatgpt(
    data: Any, *, source: str = "conversations.json"
) -> tuple[list[ConversationDocument], list[str]]:
    """The export's conversations as documents (current thread only), and notes on what was left.

    Raises InvalidInputError, naming the conversation, when the structure is not
    a ChatGPT export's.
    """
    items = [data] if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise InvalidInputError(
            f"{source} is not a ChatGPT export: expected a list of conversations."
        )
    documents: list[ConversationDocument] = []
    notes: list[str] = []
    for index, item in enumerate(items):
        where = f"{source}, conversation [{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"{where}: expected an object, got {type(item).__name__}.")
        title = item.get("title")
        if title is not None and not isinstance(title, str):
            raise InvalidInputError(f"{where}: 'title' must be text.")
        if title:
            where = f"{where} ({title!r})"
        messages, skipped = _thread(item, where)
        if not messages:
            notes.append(f"{where}: no visible messages on its current thread; skipped.")
            continue
        if skipped:
            notes.append(f"{where}: left out {skipped} hidden, tool or non-text message(s).")
        documents.append(ConversationDocument(title=title or None, messages=messages))
    return documents, notes


def _thread(conv: Mapping[str, Any], where: str) -> tuple[list[DocumentMessage], int]:
    mapping = conv.get("mapping")
    if not isinstance(mapping, Mapping) or not mapping:
        raise InvalidInputError(f"{where}: 'mapping' must be a non-empty object of nodes.")
    path = _current_path(mapping, conv.get("current_node"), where)
    conversation_id = conv.get("conversation_id") or conv.get("id")
    messages: list[DocumentMessage] = []
    skipped = 0
    for node_id in path:
        node = mapping[node_id]
        message = node.get("message")
        if message is None:
            continue
        if not isinstance(message, Mapping):
            raise InvalidInputError(f"{where}: node {node_id!r} has a malformed 'message'.")
        converted = _message(node_id, node, message, conversation_id, where)
        if converted is None:
            skipped += 1
        else:
            messages.append(converted)
    return messages, skipped


def _current_path(mapping: Mapping[str, Any], current: Any, where: str) -> list[str]:
    """Node ids from the root to the current node."""
    for node_id, node in mapping.items():
        if not isinstance(node, Mapping):
            raise InvalidInputError(f"{where}: node {node_id!r} is not an object.")
    if current is None:
        current = _last_leaf(mapping, where)
    if not isinstance(current, str) or current not in mapping:
        raise InvalidInputError(f"{where}: 'current_node' {current!r} is not a node of 'mapping'.")
    path: list[str] = []
    seen: set[str] = set()
    step: Any = current
    while step is not None:
        if step in seen:
            raise InvalidInputError(f"{where}: the parent links loop at node {step!r}.")
        if step not in mapping:
            raise InvalidInputError(f"{where}: node {path[-1]!r} names a missing parent {step!r}.")
        seen.add(step)
        path.append(step)
        step = mapping[step].get("parent")
    path.reverse()
    return path


def _last_leaf(mapping: Mapping[str, Any], where: str) -> str:
    roots = [k for k, n in mapping.items() if n.get("parent") is None]
    if len(roots) != 1:
        raise InvalidInputError(
            f"{where}: no 'current_node', and the tree has {len(roots)} roots instead of one."
        )
    node_id, seen = roots[0], {roots[0]}
    while True:
        children = [c for c in mapping[node_id].get("children") or [] if c in mapping]
        if not children or children[-1] in seen:
            return node_id
        node_id = children[-1]
        seen.add(node_id)


def _message(
    node_id: str,
    node: Mapping[str, Any],
    message: Mapping[str, Any],
    conversation_id: Any,
    where: str,
) -> DocumentMessage | None:
    author = message.get("author") or {}
    role = author.get("role") if isinstance(author, Mapping) else None
    meta = message.get("metadata") or {}
    if not isinstance(meta, Mapping):
        meta = {}
    if role not in ROLES or meta.get("is_visually_hidden_from_conversation"):
        return None
    if role == "assistant" and message.get("recipient", "all") != "all":
        return None  # a call to a tool, not a reply to the user
    content = message.get("content") or {}
    if not isinstance(content, Mapping) or content.get("content_type") not in TEXT_TYPES:
        return None
    text, non_text = _text(content, f"{where}: node {node_id!r}")
    if not text.strip():
        return None
    original: dict[str, Any] = {
        "conversation_id": conversation_id,
        "node_id": node_id,
        "message_id": message.get("id"),
        "parent_id": node.get("parent"),
        "model_slug": meta.get("model_slug"),
        "content_type": content.get("content_type"),
        "non_text_parts": non_text or None,
    }
    return DocumentMessage(
        role=role,
        content=text,
        created_at=_time(message.get("create_time"), f"{where}: node {node_id!r}"),
        metadata={"chatgpt": {k: v for k, v in original.items() if v is not None}},
    )


def _text(content: Mapping[str, Any], where: str) -> tuple[str, int]:
    if content.get("content_type") == "code":
        text = content.get("text")
        return (text if isinstance(text, str) else ""), 0
    parts = content.get("parts")
    if not isinstance(parts, Sequence) or isinstance(parts, str):
        raise InvalidInputError(f"{where}: 'content.parts' must be a list.")
    pieces: list[str] = []
    non_text = 0
    for part in parts:
        if isinstance(part, str):
            if part:
                pieces.append(part)
        elif isinstance(part, Mapping):
            non_text += 1
            kind = str(part.get("content_type", ""))
            pieces.append("[image]" if "image" in kind else "[attachment]")
        elif part is not None:
            raise InvalidInputError(f"{where}: a content part is {type(part).__name__}.")
    return "\n\n".join(pieces), non_text


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{where}: 'create_time' must be seconds since the epoch.")
    earliest, latest = EARLIEST.timestamp(), LATEST.timestamp()
    if not (math.isfinite(value) and earliest <= value < latest):
        raise InvalidInputError(
            f"{where}: 'create_time' {value!r} is not a time between {EARLIEST.date()} and "
            f"{LATEST.date()} (seconds since 1970); the export is damaged or not from ChatGPT."
        )
    return datetime.fromtimestamp(value, tz=UTC)
