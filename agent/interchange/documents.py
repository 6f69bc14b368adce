"""The conversation document: the JSON shape `import_conversation` reads and export writes.

    {"title": str?, "system_prompt": str?,
     "messages": [{"role": "user"|"assistant"|"system", "content": str,
                   "created_at": ISO-8601?, "metadata": object?}, ...]}

Exports add optional per-message fields (`status`, `pinned`) and a `format` tag,
all accepted on import, so export -> import -> export gives the same document.
Validation is strict: unknown roles or keys, wrong types and bad timestamps are
rejected with an InvalidInputError that says where, before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from recursa.agent.errors import InvalidInputError
from recursa.memory.records import ConversationExport, MessageRecord

DOCUMENT_FORMAT: Literal["recursa.conversation/v1"] = "recursa.conversation/v1"


# The timestamps an import accepts: what both databases store and every clock can show.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def check_time_range(value: datetime) -> datetime:
    """`value` in UTC, or ValueError when it lies outside 1900-01-01 .. 9999-01-01 UTC."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(
            f"{value.isoformat()} is out of range: timestamps must lie between "
            f"{EARLIEST.date()} and {LATEST.date()} (UTC)"
        )
    return utc


class DocumentMessage(BaseModel):
    """One message of a conversation document."""

    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["user", "assistant", "system"]
    content: str
    created_at: datetime | None = Field(
        default=None, description="ISO-8601; a time without a zone is taken as UTC."
    )
    metadata: dict[str, Any] | None = None
    status: Literal["complete", "interrupted", "error"] = "complete"
    pinned: bool = False

    @field_validator("created_at", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> Any:
        if value is None or isinstance(value, datetime):
            return value
        if not isinstance(value, str):
            raise ValueError("must be an ISO-8601 string such as 2024-05-01T12:30:00Z")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO-8601 timestamp (e.g. 2024-05-01T12:30:00Z)"
            ) from None
        return parsed

    @field_validator("created_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return check_time_range(value)


class ConversationDocument(BaseModel):
    """A whole conversation as a portable document."""

    model_config = ConfigDict(extra="forbid", strict=True)

    format: Literal["recursa.conversation/v1"] | None = None
    title: str | None = None
    system_prompt: str | None = None
    messages: list[DocumentMessage] = Field(default_factory=list)

    @classmethod
    def parse(
        cls, data: ConversationDocument | Mapping[str, Any] | str | bytes
    ) -> ConversationDocument:
        """Validate a document given as a model, a mapping or JSON text."""
        if isinstance(data, ConversationDocument):
            return data
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"The import document is not valid JSON: {exc}") from exc
        if not isinstance(data, Mapping):
            raise InvalidInputError(
                "The import document must be a JSON object with a 'messages' list, "
                f"not {type(data).__name__}."
            )
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise InvalidInputError(describe_errors(exc)) from exc

    def fingerprint(self) -> str:
        """SHA-256 of what the conversation says: title, system prompt, each message's role
        and text, as canonical JSON.

        Timestamps, statuses and metadata are left out, so one file imported twice,
        and a conversation exported and imported back, have the same fingerprint:
        that is how a re-import is recognised.
        """
        data = {
            "title": self.title,
            "system_prompt": self.system_prompt,
            "messages": [[m.role, m.content] for m in self.messages],
        }
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        # surrogatepass: a lone surrogate is refused by the store, with a message, after this.
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; timestamps as ISO-8601 strings."""
        return self.model_dump(mode="json", exclude_none=False)

    @classmethod
    def from_export(cls, export: ConversationExport) -> ConversationDocument:
        conv = export.conversation
        return cls(
            format=DOCUMENT_FORMAT,
            title=conv.title,
            system_prompt=conv.system_prompt,
            messages=[message_to_document(m) for m in export.messages],
        )


def message_to_document(record: MessageRecord) -> DocumentMessage:
    created = record.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return DocumentMessage(
        role=record.role,
        content=record.content,
        created_at=created,
        metadata=dict(record.metadata),
        status=record.status,
        pinned=record.pinned,
    )


def describe_errors(exc: ValidationError) -> str:
    """One line per problem, each with its place in the document."""
    lines = []
    for err in exc.errors():
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        where = where.lstrip(".") or "document"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = (
                "role, content, created_at, metadata, status, pinned"
                if err["loc"][:1] == ("messages",)
                else "format, title, system_prompt, messages"
            )
            msg = f"unknown field (allowed: {allowed})"
        lines.append(f"{where}: {msg}")
    return "Malformed import document: " + "; ".join(lines)
