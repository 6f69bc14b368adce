"""The memory endpoints under `/v1/recursa`: what is stored, as the library's own models.

Conversations (list, create, read, rename, archive, delete), their messages
(paged), full-text search, the prompt the next turn would use, a reply's
trace, the summary chain, and export/import in the CLI's formats. Every call
goes through the caller's `ScopedAgent`, so a key sees only its own
conversations (404 for the rest) unless it is an admin key.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from recursa.agent import (
    ConversationInfo,
    MessageInfo,
    PromptPlan,
    PromptTrace,
    SearchResult,
    SummaryInfo,
)
from recursa.agent.scoped import ScopedAgent
from recursa.serve.state import ServeState

__all__ = ["router"]

router = APIRouter(prefix="/v1/recursa", tags=["memory"])


def _state(request: Request) -> ServeState:
    state: ServeState = request.app.state.recursa
    return state


def _scope(request: Request) -> ScopedAgent:
    return _state(request).scope(request.state.caller)


State = Annotated[ServeState, Depends(_state)]
Scope = Annotated[ScopedAgent, Depends(_scope)]


class NewConversation(BaseModel):
    """A conversation to create."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    system_prompt: str | None = None
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Setting overrides for this conversation, as in Agent.create_conversation.",
    )


class ConversationChange(BaseModel):
    """Fields to change; those left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, description="A new title.")
    archived: bool | None = Field(default=None, description="Archive (true) or unarchive.")


class PromptRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", description="The message the next turn would send.")


class ImportResult(BaseModel):
    conversation_ids: list[int]
    format: str
    notes: list[str] = Field(default_factory=list)


@router.get("/conversations", response_model=list[ConversationInfo])
async def list_conversations(
    state: State,
    scope: Scope,
    include_archived: bool = False,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """Conversations this key sees, most recently active first."""
    return await state.call(
        scope.list_conversations, include_archived=include_archived, limit=limit, offset=offset
    )


@router.post("/conversations", response_model=ConversationInfo, status_code=201)
async def create_conversation(state: State, scope: Scope, body: NewConversation) -> Any:
    """Create an empty conversation owned by this key."""

    def work() -> ConversationInfo:
        cid = scope.create_conversation(body.title, body.system_prompt, body.settings)
        return scope.get_conversation(cid)

    return await state.call(work)


@router.get("/conversations/{conversation_id}", response_model=ConversationInfo)
async def get_conversation(state: State, scope: Scope, conversation_id: int) -> Any:
    return await state.call(scope.get_conversation, conversation_id)


@router.patch("/conversations/{conversation_id}", response_model=ConversationInfo)
async def change_conversation(
    state: State, scope: Scope, conversation_id: int, body: ConversationChange
) -> Any:
    """Rename (title) and/or archive (archived) a conversation."""

    def work() -> ConversationInfo:
        info = scope.get_conversation(conversation_id)
        if "title" in body.model_fields_set:
            info = scope.rename_conversation(conversation_id, body.title)
        if body.archived is not None:
            info = scope.archive_conversation(conversation_id, body.archived)
        return info

    return await state.call(work)


@router.delete("/conversations/{conversation_id}", status_code=204)
async def delete_conversation(state: State, scope: Scope, conversation_id: int) -> Response:
    """Delete a conversation with its messages, summaries and traces."""
    await state.call(scope.delete_conversation, conversation_id)
    return Response(status_code=204)


@router.get("/conversations/{conversation_id}/messages", response_model=list[MessageInfo])
async def messages(
    state: State,
    scope: Scope,
    conversation_id: int,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = 100,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    newest_first: bool = False,
) -> Any:
    """Messages in seq order; page with after_seq (forward) or before_seq + newest_first."""
    return await state.call(
        scope.messages,
        conversation_id,
        limit=limit,
        before_seq=before_seq,
        after_seq=after_seq,
        newest_first=newest_first,
    )


@router.get("/search", response_model=list[SearchResult])
async def search(
    state: State,
    scope: Scope,
    q: Annotated[str, Query(min_length=1, description="Every word must appear.")],
    conversation_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> Any:
    """Full-text search over the messages and summaries this key sees."""
    return await state.call(scope.search, q, conversation_id=conversation_id, limit=limit)


@router.post("/conversations/{conversation_id}/prompt", response_model=PromptPlan)
async def preview_prompt(
    state: State, scope: Scope, conversation_id: int, body: PromptRequest
) -> Any:
    """The prompt plan the next turn would use for `text`; nothing is stored or generated."""
    return await state.call(scope.preview_prompt, conversation_id, body.text)


@router.get("/messages/{message_id}/trace", response_model=PromptTrace)
async def trace(state: State, scope: Scope, message_id: int) -> Any:
    """What the model saw for a stored reply."""
    return await state.call(scope.trace, message_id)


@router.get("/conversations/{conversation_id}/summaries", response_model=list[SummaryInfo])
async def summaries(state: State, scope: Scope, conversation_id: int) -> Any:
    """The summary chain, latest first, each link with the seqs it covers."""
    return await state.call(scope.summaries, conversation_id)


_MEDIA = {"json": "application/json", "jsonl": "application/x-ndjson", "md": "text/markdown"}


@router.get(
    "/conversations/{conversation_id}/export",
    responses={200: {"content": {m: {} for m in _MEDIA.values()}}},
)
async def export(
    state: State,
    scope: Scope,
    conversation_id: int,
    format: Literal["json", "jsonl", "md"] = "json",
) -> Response:
    """The conversation in the CLI's export formats: json or jsonl (re-importable), md."""
    from recursa.agent.interchange import export_documents, render_export

    def work() -> str:
        docs = export_documents(scope, [conversation_id])  # type: ignore[arg-type]
        return str(render_export(docs, format, conversation_ids=[conversation_id]))

    return Response(await state.call(work), media_type=_MEDIA[format])


@router.post("/conversations/import", response_model=ImportResult, status_code=201)
async def import_conversations(
    state: State,
    scope: Scope,
    body: Annotated[bytes, Body(media_type="application/json")],
    format: Literal["auto", "json", "jsonl", "chatgpt"] = "auto",
    again: bool = False,
) -> Any:
    """Import a recursa JSON/JSONL export or a ChatGPT conversations.json: all or nothing.

    A conversation imported before (same content) is skipped and named in the
    notes, as the CLI does; `again=true` imports it as a new copy.
    """
    from recursa.agent.interchange import import_documents, read_conversations

    def work() -> ImportResult:
        # The CLI's reader takes a file: the body goes through one, so the formats,
        # their detection and their error messages are exactly the CLI's.
        with tempfile.TemporaryDirectory() as folder:
            name = "upload.jsonl" if format == "jsonl" else "upload.json"
            path = Path(folder) / name
            path.write_bytes(body)
            batch = read_conversations(path, format)
        result = import_documents(scope, batch.documents, again=again)  # type: ignore[arg-type]
        notes = list(batch.notes) + [
            f"document {index + 1} was imported before (conversation {cid}): skipped"
            for index, cid in result.skipped.items()
        ]
        return ImportResult(conversation_ids=result.imported_ids, format=batch.format, notes=notes)

    return await state.call(work)
