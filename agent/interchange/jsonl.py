"""JSON Lines conversations: one message per line, each conversation opened by a header line.

The shape (one JSON object per line, UTF-8; blank lines are ignored):

    {"type": "conversation", "format": "recursa.conversation/v1", "title": "Trip"}
    {"type": "message", "role": "user", "content": "Hi", "created_at": "2024-05-01T12:30:00Z"}
    {"type": "message", "role": "assistant", "content": "Hello!", ...}
    {"type": "conversation", "title": "Another one"}
    ...

A header line starts a new conversation; message lines belong to the
conversation of the header above them. A file of message lines with no header
is one untitled conversation. `type` may be left out: a line with a `role` or a
`content` is a message, any other line a header. Message fields are those of
`recursa.agent.interchange.documents.DocumentMessage`, header fields those of
`ConversationDocument` except `messages`. Parsing is all or nothing: the first
bad line raises an InvalidInputError that names its line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from recursa.agent.errors import InvalidInputError
from recursa.agent.interchange.documents import ConversationDocument, DocumentMessage
from recursa.agent.interchange.limits import load_json

HEADER_FIELDS = ("format", "title", "system_prompt")
MESSAGE_FIELDS = ("role", "content", "created_at", "metadata", "status", "pinned")


def dump_jsonl(documents: Iterable[ConversationDocument]) -> str:
    """The documents as JSON Lines (a header line, then one line per message)."""
    lines: list[str] = []
    for doc in documents:
        data = doc.to_dict()
        header = {"type": "conversation", **{k: data[k] for k in HEADER_FIELDS}}
        lines.append(json.dumps(header, ensure_ascii=False))
        for message in data["messages"]:
            lines.append(json.dumps({"type": "message", **message}, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def parse_jsonl(text: str, *, source: str = "the JSONL file") -> list[ConversationDocument]:
    """Parse JSON Lines into validated documents; InvalidInputError names the first bad line."""
    conversations: list[tuple[dict[str, Any], list[DocumentMessage]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = load_json(line, f"{source}, line {number}")
        except json.JSONDecodeError as exc:
            raise _bad(source, number, f"not valid JSON ({exc.msg}, column {exc.colno})") from exc
        if not isinstance(obj, dict):
            raise _bad(source, number, f"expected a JSON object, got {type(obj).__name__}")
        kind = obj.pop("type", None)
        if kind is None:
            kind = "message" if ("role" in obj or "content" in obj) else "conversation"
        if kind == "conversation":
            conversations.append((_header(obj, source, number), []))
        elif kind == "message":
            if not conversations:
                conversations.append(({}, []))  # messages with no header: one conversation
            conversations[-1][1].append(_message(obj, source, number))
        else:
            raise _bad(source, number, f"unknown type {kind!r} (use 'conversation' or 'message')")
    if not conversations:
        raise InvalidInputError(f"{source} holds no conversations (it has no JSON lines).")
    return [ConversationDocument(**header, messages=messages) for header, messages in conversations]


def _header(obj: dict[str, Any], source: str, number: int) -> dict[str, Any]:
    try:
        doc = ConversationDocument.model_validate({**obj, "messages": []})
    except ValidationError as exc:
        raise _bad(source, number, _describe(exc, HEADER_FIELDS)) from exc
    return {k: getattr(doc, k) for k in HEADER_FIELDS}


def _message(obj: dict[str, Any], source: str, number: int) -> DocumentMessage:
    try:
        return DocumentMessage.model_validate(obj)
    except ValidationError as exc:
        raise _bad(source, number, _describe(exc, MESSAGE_FIELDS)) from exc


def _describe(exc: ValidationError, allowed: tuple[str, ...]) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "line"
        if err["type"] == "extra_forbidden":
            parts.append(f"{where}: unknown field (allowed: type, {', '.join(allowed)})")
        else:
            parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _bad(source: str, number: int, problem: str) -> InvalidInputError:
    return InvalidInputError(
        f"{source}, line {number}: {problem}. Nothing was imported; fix that line and retry."
    )
