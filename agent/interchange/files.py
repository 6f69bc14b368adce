"""Reading conversation files (format detection, all-or-nothing import) and rendering exports."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from recursa.agent.errors import InvalidInputError
from recursa.agent.interchange.chatgpt import looks_like_chatgpt, parse_chatgpt
from recursa.agent.interchange.documents import ConversationDocument
from recursa.agent.interchange.jsonl import dump_jsonl, parse_jsonl
from recursa.agent.interchange.limits import DEFAULT_MAX_BYTES, load_json, read_limited
from recursa.agent.interchange.markdown import render_markdown

if TYPE_CHECKING:
    from recursa.agent.agent import Agent
    from recursa.agent.boundary import ImportResult

ImportFormat = Literal["auto", "json", "jsonl", "chatgpt"]
ExportFormat = Literal["json", "jsonl", "md"]
IMPORT_FORMATS: tuple[str, ...] = ("auto", "json", "jsonl", "chatgpt")
EXPORT_FORMATS: tuple[str, ...] = ("json", "jsonl", "md")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class ImportBatch:
    """The validated conversations of one file, ready to import."""

    source: str
    format: Literal["json", "jsonl", "chatgpt"]
    documents: list[ConversationDocument]
    notes: list[str] = field(default_factory=list)


def read_conversations(
    path: Path | str, format: ImportFormat = "auto", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> ImportBatch:
    """Read and validate a conversation file; nothing is written.

    `format="auto"` picks JSONL for .jsonl/.ndjson files, otherwise parses JSON
    and tells a ChatGPT export (objects with a `mapping`) from recursa's own
    document (an object with `messages`, or a list of them). The file is held
    to the limits of `recursa.agent.interchange.limits` (`max_bytes` at most).
    """
    path = Path(path)
    source = path.name
    if format not in IMPORT_FORMATS:
        raise InvalidInputError(f"Unknown import format {format!r}; use one of {IMPORT_FORMATS}.")
    raw = read_limited(path, max_bytes)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{source} is not UTF-8 text (byte {exc.start}); export it again as UTF-8 JSON."
        ) from exc
    if format == "jsonl" or (format == "auto" and path.suffix.lower() in JSONL_SUFFIXES):
        return ImportBatch(source, "jsonl", parse_jsonl(text, source=source))
    if not text.strip():
        raise InvalidInputError(f"{source} is empty; there is nothing to import.")
    try:
        data = load_json(text, source)
    except json.JSONDecodeError as exc:
        hint = (
            " (for JSON Lines, name the file .jsonl or pass --format jsonl)"
            if (exc.msg == "Extra data")
            else ""
        )
        raise InvalidInputError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            f"{hint}. Nothing was imported."
        ) from exc
    if format == "chatgpt" or (format == "auto" and looks_like_chatgpt(data)):
        documents, notes = parse_chatgpt(data, source=source)
        if not documents:
            raise InvalidInputError(f"{source} holds no conversation with visible messages.")
        return ImportBatch(source, "chatgpt", documents, notes)
    return ImportBatch(source, "json", _recursa_documents(data, source))


def _recursa_documents(data: Any, source: str) -> list[ConversationDocument]:
    def parse(item: Any) -> ConversationDocument:
        if not isinstance(item, dict):
            # parse() would take a string as JSON text; in a file it is just the wrong type.
            raise InvalidInputError(
                "The import document must be a JSON object with a 'messages' list, "
                f"not {type(item).__name__}."
            )
        return ConversationDocument.parse(item)

    if isinstance(data, list):
        if not data:
            raise InvalidInputError(f"{source} is an empty list; there is nothing to import.")
        documents = []
        for index, item in enumerate(data):
            try:
                documents.append(parse(item))
            except InvalidInputError as exc:
                raise InvalidInputError(f"{source}, conversation [{index}]: {exc}") from exc
        return documents
    try:
        return [parse(data)]
    except InvalidInputError as exc:
        raise InvalidInputError(f"{source}: {exc}") from exc


def import_documents(
    agent: Agent,
    documents: Sequence[ConversationDocument],
    *,
    source: str | None = None,
    again: bool = False,
) -> ImportResult:
    """Import every new document in one transaction, or none; re-imports are skipped.

    See `Agent.import_conversations`: a document already imported (same content)
    is skipped unless `again`.
    """
    return agent.import_conversations(documents, source=source, again=again)


def export_documents(agent: Agent, conversation_ids: Sequence[int]) -> list[ConversationDocument]:
    """The conversations as documents that `import_documents` reads back exactly."""
    return [
        ConversationDocument.model_validate(agent.export_conversation(cid), strict=False)
        for cid in conversation_ids
    ]


def render_export(
    documents: Sequence[ConversationDocument],
    format: ExportFormat,
    *,
    conversation_ids: Sequence[int] | None = None,
    as_list: bool | None = None,
) -> str:
    """Documents as text: JSON (one object, or a list when `as_list`), JSONL or Markdown."""
    if format == "json":
        many = len(documents) != 1 if as_list is None else as_list
        data: Any = [d.to_dict() for d in documents] if many else documents[0].to_dict()
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if format == "jsonl":
        return dump_jsonl(documents)
    if format == "md":
        ids: Sequence[int | None] = conversation_ids or [None] * len(documents)
        return "\n".join(
            render_markdown(doc, conversation_id=cid)
            for doc, cid in zip(documents, ids, strict=True)
        )
    raise InvalidInputError(f"Unknown export format {format!r}; use one of {EXPORT_FORMATS}.")
