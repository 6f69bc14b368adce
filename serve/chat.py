"""`POST /v1/chat/completions`: OpenAI's chat completions on recursa's memory.

A request, in order: check the body (400 names the field), pick the
conversation (the `X-Recursa-Conversation` header, `metadata.conversation_id`,
or the conversation whose history key matches the history the client
re-sent; else a new one, seeded with that history), wait for the
conversation (this process's lock, then the database lease other replicas
respect) and for the model (FIFO, 429 when the queue is full), then run the
turn: only the new user message is stored and planned, so the model sees
recursa's budgeted prompt, not the client's history. The reply streams as
server-sent events or comes whole; the response names the conversation in
`X-Recursa-Conversation`. A client that goes away, or a request that runs out
of time, stops the generation and the partial reply is stored as interrupted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from recursa.agent import RecursaError, TurnFailedError
from recursa.agent.scoped import KEEP_KEY
from recursa.serve.gate import QueueFull
from recursa.serve.protocol import (
    APIError,
    ChatRequest,
    HistoryMessage,
    chunk_body,
    completion_body,
    error_body,
    finish_reason,
    history_key,
    parse_conversation_id,
    parse_request,
    usage_body,
)
from recursa.serve.state import api_error
from recursa.serve.turns import TurnPump, uncancellable
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from recursa.agent import Reply
    from recursa.agent.scoped import ScopedAgent
    from recursa.serve.security import Caller
    from recursa.serve.state import ServeState

__all__ = ["CONVERSATION_HEADER", "chat_completions"]

log = logging.getLogger(__name__)
CONVERSATION_HEADER = "X-Recursa-Conversation"
LEASE_POLL_S = 0.05


class _Picked:
    """The conversation a request continues, and how it was found."""

    def __init__(
        self,
        conversation_id: int,
        *,
        holder: str,
        claimed: str | None = None,
        created: bool = False,
        leased: bool = False,
    ) -> None:
        self.id = conversation_id
        self.holder = holder  # this request's name on the conversation's turn lease
        self.claimed = claimed  # the history key taken from it (restored if the turn fails)
        self.created = created
        self.leased = leased  # whether `holder` holds the lease
        self.finished = False  # the lease is released and the history key recorded


async def chat_completions(request: Request) -> Response:
    state: ServeState = request.app.state.recursa
    caller: Caller = request.state.caller
    loop = asyncio.get_running_loop()
    deadline = loop.time() + state.settings.request_timeout
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc}.") from None
    req = parse_request(body)
    model = _check_model(state, req.model)
    header = request.headers.get(CONVERSATION_HEADER)
    explicit = (
        parse_conversation_id(header, CONVERSATION_HEADER)
        if header is not None
        else req.conversation_id
    )
    scope = state.scope(caller)
    try:
        state.gate.check()  # a full queue answers 429 before anything is written
    except QueueFull as full:
        raise _busy(full) from None

    holder = f"{state.process_id}-{uuid.uuid4().hex[:12]}"
    picked = await state.call(
        _pick_conversation, scope, req, explicit, holder, _lease_seconds(state)
    )
    stack = AsyncExitStack()
    pump: TurnPump | None = None
    try:
        await stack.enter_async_context(state.locks.hold(picked.id))
        if not picked.leased:
            await _wait_for_lease(state, scope, picked, deadline)
        try:
            await stack.enter_async_context(state.gate.slot())
        except QueueFull as full:
            raise _busy(full) from None
        if await request.is_disconnected():
            raise APIError(499, "The client went away before its turn.")
        pump = TurnPump(scope, picked.id, req.text, req.generation)
        state.turns.add(pump)
        stack.callback(state.turns.discard, pump)
        pump.start()
        kind, value = await pump.next(deadline - loop.time())
        if kind == "error":
            raise api_error(value) if isinstance(value, RecursaError) else value
    except BaseException as exc:
        await _wrap_up(state, scope, req, picked, pump, stack, refused=True)
        if isinstance(exc, TimeoutError):
            raise APIError(
                504, _timeout_message(state), type="server_error", code="timeout"
            ) from None
        raise
    headers = {CONVERSATION_HEADER: str(picked.id)}
    completion_id = f"chatcmpl-{picked.id}-{int(time.time() * 1000)}"
    if req.stream:

        async def recorded() -> None:
            await _finish(state, scope, req, picked, pump, failed_before_turn=False)

        body_iter = _stream(state, pump, req, model, completion_id, deadline, recorded)
        return _CleanupStream(
            body_iter,
            cleanup=lambda: _wrap_up(state, scope, req, picked, pump, stack, refused=False),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache"},
        )
    try:
        reply = await _collect(request, pump, deadline)
    except TimeoutError:
        await _wrap_up(state, scope, req, picked, pump, stack, refused=False)
        stored = f" (message {pump.reply.message_id})" if pump.reply else ""
        raise APIError(
            504,
            _timeout_message(state) + f" The partial reply was stored as interrupted{stored}.",
            type="server_error",
            code="timeout",
        ) from None
    except BaseException:
        await _wrap_up(state, scope, req, picked, pump, stack, refused=False)
        raise
    await _wrap_up(state, scope, req, picked, pump, stack, refused=False)
    return JSONResponse(
        completion_body(
            completion_id=completion_id,
            model=model,
            text=reply.text,
            finish=finish_reason(reply.usage.finish_reason if reply.usage else None, reply.status),
            usage=_usage(reply),
            extra=_extra(reply),
        ),
        headers=headers,
    )


def _check_model(state: ServeState, name: str) -> str:
    served = state.agent.model_spec
    if name not in (served, "recursa"):
        raise APIError(
            404,
            f"The model '{name}' does not exist here: this server runs '{served}' "
            "(GET /v1/models).",
            param="model",
            code="model_not_found",
        )
    return served


def _timeout_message(state: ServeState) -> str:
    return (
        f"The reply did not finish within serve.request_timeout "
        f"({state.settings.request_timeout:g} s); lower max_tokens or raise the timeout."
    )


def _lease_seconds(state: ServeState) -> float:
    # The lease outlives the longest request a little, so a crashed process frees it.
    return state.settings.request_timeout + 30


def _pick_conversation(
    scope: ScopedAgent, req: ChatRequest, explicit: int | None, holder: str, seconds: float
) -> _Picked:
    """The conversation to continue (checked against the caller's scope), or a new one.

    A claimed or new conversation comes with its turn lease when it was free.
    """
    if explicit is not None:
        leased = scope.take_lease(explicit, holder, seconds)
        return _Picked(explicit, holder=holder, leased=leased)
    if req.history:
        key = history_key(req.history)
        found = scope.claim_history(key, holder, seconds)
        if found is not None:
            return _Picked(found[0], holder=holder, claimed=key, leased=found[1])
    cid = _new_conversation(scope, req.history, req.text)
    # Nobody else knows the new id yet, so the lease is free.
    leased = scope.take_lease(cid, holder, seconds)
    return _Picked(cid, holder=holder, created=True, leased=leased)


def _new_conversation(scope: ScopedAgent, history: list[HistoryMessage], text: str) -> int:
    """A conversation for a client whose history matches none: that history becomes its memory."""
    system = "\n\n".join(m.content for m in history if m.role == "system") or None
    turns = [m for m in history if m.role != "system"]
    title = " ".join((turns[0].content if turns else text).split())[:60] or None
    if not turns:
        return scope.create_conversation(title=title, system_prompt=system)
    return scope.import_conversation(
        {
            "title": title,
            "system_prompt": system,
            "messages": [
                {"role": m.role, "content": m.content, "metadata": {"source": "client history"}}
                for m in turns
            ],
        }
    )


async def _wait_for_lease(
    state: ServeState, scope: ScopedAgent, picked: _Picked, deadline: float
) -> None:
    """Wait for the conversation's database lease, which other server processes respect."""
    loop = asyncio.get_running_loop()
    seconds = _lease_seconds(state)
    while not await state.call(scope.take_lease, picked.id, picked.holder, seconds):
        if loop.time() + LEASE_POLL_S > deadline:
            raise APIError(
                409,
                f"Conversation {picked.id} is busy with another request; retry later.",
                code="conversation_busy",
            )
        await asyncio.sleep(LEASE_POLL_S)
    picked.leased = True


async def _finish(
    state: ServeState,
    scope: ScopedAgent,
    req: ChatRequest,
    picked: _Picked,
    pump: TurnPump | None,
    *,
    failed_before_turn: bool,
) -> None:
    """After the turn: record the next history key, or undo what a refused request made."""
    if picked.finished:
        return
    picked.finished = True
    reply = pump.reply if pump is not None else None

    def work() -> None:
        key: Any = KEEP_KEY  # str, or KEEP_KEY: leave the history key as it is
        if reply is not None and reply.status == "complete":
            key = history_key([*req.messages, HistoryMessage("assistant", reply.text)])
        elif failed_before_turn and picked.created:
            scope.delete_conversation(picked.id)  # refused before any turn: nothing is left
            return
        elif picked.claimed is not None:
            key = picked.claimed  # the client may send the same history again
        if picked.leased:
            scope.end_turn(picked.id, picked.holder, key)  # one write: lease and key
        elif key is not KEEP_KEY:
            scope.remember_history(picked.id, key)

    try:
        await uncancellable(asyncio.to_thread(work))
    except RecursaError as exc:
        # The turn itself is stored; only the key that continues it by history is missing.
        log.warning("Conversation %s: recording its history key failed: %s", picked.id, exc)


def _usage(reply: Reply) -> dict[str, int]:
    prompt = reply.trace.total_tokens if reply.trace else 0
    completion = reply.usage.completion_tokens if reply.usage else 0
    return usage_body(prompt, completion)


def _extra(reply: Reply) -> dict[str, Any]:
    """recursa's own fields beside OpenAI's: where the reply is stored and how it ended."""
    return {
        "conversation_id": reply.conversation_id,
        "message_id": reply.message_id,
        "user_message_id": reply.user_message_id,
        "status": reply.status,
    }


async def _collect(request: Request, pump: TurnPump, deadline: float) -> Reply:
    """The whole reply; a client that disconnects meanwhile cancels it."""

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                pump.token.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        async for kind, value in pump.chunks(deadline):
            if kind == "error":
                raise api_error(value) if isinstance(value, RecursaError) else value
        assert pump.reply is not None
        return pump.reply
    finally:
        watcher.cancel()


async def _stream(
    state: ServeState,
    pump: TurnPump,
    req: ChatRequest,
    model: str,
    completion_id: str,
    deadline: float,
    recorded: Callable[[], Awaitable[None]],
) -> AsyncIterator[str]:
    """The reply as server-sent events in OpenAI's chunk format, ending with [DONE].

    `recorded` runs before the last chunk is sent: a client that sends its next
    request as soon as this reply ends must find the conversation's new history key.
    """
    created = int(time.time())

    def event(**kw: Any) -> str:
        body = chunk_body(
            completion_id=completion_id,
            created=created,
            model=model,
            include_usage=req.include_usage,
            **kw,
        )
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield event(delta={"role": "assistant", "content": ""})
    try:
        async for kind, value in pump.chunks(deadline):
            if kind == "chunk" and value.event == "text" and value.text:
                yield event(delta={"content": value.text})
            elif kind == "error":
                error = (
                    api_error(value)
                    if isinstance(value, RecursaError)
                    else APIError(500, f"{type(value).__name__}: {value}", type="server_error")
                )
                if isinstance(value, TurnFailedError):
                    error.code = "model_error"
                yield (
                    "data: "
                    + json.dumps(
                        error_body(
                            error.message, type=error.type, param=error.param, code=error.code
                        )
                    )
                    + "\n\n"
                )
                return
    except TimeoutError:
        await pump.stop()
        yield (
            "data: "
            + json.dumps(
                error_body(
                    _timeout_message(state) + " The partial reply was stored as interrupted.",
                    type="server_error",
                    param=None,
                    code="timeout",
                )
            )
            + "\n\n"
        )
        return
    reply = pump.reply
    assert reply is not None
    await recorded()
    finish = finish_reason(reply.usage.finish_reason if reply.usage else None, reply.status)
    yield event(delta={}, finish=finish, extra=_extra(reply))
    if req.include_usage:
        yield event(delta=None, usage=_usage(reply))
    yield "data: [DONE]\n\n"


async def _wrap_up(
    state: ServeState,
    scope: ScopedAgent,
    req: ChatRequest,
    picked: _Picked,
    pump: TurnPump | None,
    stack: AsyncExitStack,
    *,
    refused: bool,
) -> None:
    """However a request ends (its reply, an error, a disconnect, shutdown): store, then let go.

    A turn still running is stopped and its partial reply stored; a request
    `refused` before its turn stored anything leaves no conversation behind. Runs
    to the end even when the request's task is being cancelled.
    """

    async def work() -> None:
        if pump is not None and not pump.finished:
            await pump.stop()
        failed_before_turn = refused and (pump is None or pump.reply is None)
        await _finish(state, scope, req, picked, pump, failed_before_turn=failed_before_turn)
        await stack.aclose()

    await uncancellable(work())


class _CleanupStream(StreamingResponse):
    """A StreamingResponse that runs `cleanup` however it ends, even if it never started."""

    def __init__(self, content: AsyncIterator[str], *, cleanup: Any, **kw: Any) -> None:
        super().__init__(content, **kw)
        self._cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._cleanup()


def _busy(full: QueueFull) -> APIError:
    """The 429 a full queue answers, with its Retry-After estimate."""
    return APIError(
        429,
        f"The model is busy: {full.waiting} requests are waiting (serve.queue_limit). "
        f"Retry after {full.retry_after} s.",
        type="rate_limit_error",
        code="queue_full",
        headers={"Retry-After": str(full.retry_after)},
    )
