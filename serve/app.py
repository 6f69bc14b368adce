"""`create_app`: the ASGI application of `recursa serve`, also mountable in another app.

    from recursa.serve import create_app
    app = create_app(Agent.open(model="smollm2-135m"))      # or create_app(settings)

Routes: `POST /v1/chat/completions` and `GET /v1/models` (OpenAI's protocol),
the memory endpoints under `/v1/recursa` (see `recursa.serve.memory`),
`GET /healthz`, and the OpenAPI document at `/openapi.json`. Every request but
`/healthz` and the API documents passes the gatekeeper first: a wrong or missing
key is answered 401 before the body is read, a body over `max_body_bytes` 413
before it is parsed. One access-log line per request (method, path, status,
duration, caller digest, conversation), never a message's text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from recursa.agent import RecursaError
from recursa.serve.chat import CONVERSATION_HEADER, chat_completions
from recursa.serve.gate import ModelGate
from recursa.serve.memory import router as memory_router
from recursa.serve.protocol import APIError, error_body
from recursa.serve.security import KeyRing
from recursa.serve.state import ServeState, api_error
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from recursa.agent import Agent
    from recursa.agent.settings import ServeSettings, Settings

__all__ = ["create_app"]

access_log = logging.getLogger("recursa.serve.access")
log = logging.getLogger("recursa.serve")

# Reachable without a key: a load balancer's health check and the API's description.
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect"})


def create_app(
    agent_or_settings: Agent | Settings | None = None,
    *,
    serve: ServeSettings | None = None,
    load_model: bool = True,
) -> FastAPI:
    """The service over an Agent (kept open: the caller closes it) or one built from Settings.

    With Settings (or None: `Settings.load()`), the app opens the Agent at startup
    and closes it at shutdown. `serve` overrides the settings' `serve` section.
    `load_model` loads the model in the background at startup, so `/healthz`
    reports "loading" and the first request does not pay for it.
    """
    from recursa.agent import Agent
    from recursa.agent.settings import Settings

    if isinstance(agent_or_settings, Agent):
        agent, owns = agent_or_settings, False
    else:
        settings = agent_or_settings if agent_or_settings is not None else Settings.load()
        agent, owns = Agent.open(settings=settings), True
    serve = serve or agent.settings.serve
    slots = serve.http_concurrency if agent.model_spec.startswith("openai:") else 1
    state = ServeState(
        agent=agent,
        settings=serve,
        keys=KeyRing(serve.api_keys, serve.admin_keys),
        gate=ModelGate(slots, serve.queue_limit),
        owns_agent=owns,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = asyncio.create_task(_load_model(state)) if load_model else None
        try:
            yield
        finally:
            await _shutdown(state, loader)

    app = FastAPI(
        title="recursa",
        summary="OpenAI-compatible chat completions on recursa's recursive, SQL-persisted memory.",
        version=_version(),
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.recursa = state
    app.add_api_route(
        "/v1/chat/completions",
        chat_completions,
        methods=["POST"],
        tags=["openai"],
        summary="Chat completions (OpenAI's protocol), streamed or whole",
        response_class=JSONResponse,
    )
    app.add_api_route("/v1/models", _models, methods=["GET"], tags=["openai"])
    app.add_api_route("/healthz", _health, methods=["GET"], tags=["operations"])
    app.include_router(memory_router)
    app.add_exception_handler(APIError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RecursaError, _recursa_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    if serve.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=serve.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", CONVERSATION_HEADER],
            expose_headers=[CONVERSATION_HEADER],
        )
    # Added last, so it runs first: nothing (CORS included) sees an unauthenticated body.
    app.add_middleware(Gatekeeper, state=state)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("recursa")
    except PackageNotFoundError:
        return "0+unknown"


# --- the gatekeeper: key, body size, access log -------------------------------------------


class Gatekeeper:
    """ASGI middleware: 401 for a bad key, 413 for a big body, one access-log line per request."""

    def __init__(self, app: ASGIApp, state: ServeState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 0, "conversation": "-"}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        caller = self.state.keys.identify(headers.get("authorization"))

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                for key, value in message.get("headers", []):
                    if key.decode("latin-1").lower() == CONVERSATION_HEADER.lower():
                        status["conversation"] = value.decode("latin-1")
            await send(message)

        try:
            if caller is None and path not in PUBLIC_PATHS and scope["method"] != "OPTIONS":
                await _error(
                    logged_send,
                    APIError(
                        401,
                        "A valid API key is required: send 'Authorization: Bearer <key>' with "
                        "a key from serve.api_keys.",
                        type="invalid_request_error",
                        code="invalid_api_key",
                        headers={"WWW-Authenticate": "Bearer"},
                    ),
                )
                return
            limit = self.state.settings.max_body_bytes
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                await _error(logged_send, _too_large(limit))
                return
            scope.setdefault("state", {})["caller"] = caller
            # The body is read here, counted as it arrives, and handed on whole: a body
            # over the limit is refused before any of it is parsed.
            body = bytearray()
            more = scope["method"] in ("POST", "PUT", "PATCH")
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > limit:
                    await _error(logged_send, _too_large(limit))
                    return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()  # afterwards only a disconnect can come

            await self.app(scope, replay, logged_send)
        finally:
            access_log.info(
                json.dumps(
                    {
                        "method": scope["method"],
                        "path": path,
                        "status": status["code"],
                        "ms": round((time.perf_counter() - start) * 1000, 1),
                        "caller": caller.label if caller is not None else "unauthenticated",
                        "conversation": status["conversation"],
                        "client": (scope.get("client") or ("-",))[0],
                    }
                )
            )


def _too_large(limit: int) -> APIError:
    return APIError(
        413,
        f"The request body is larger than serve.max_body_bytes ({limit} bytes).",
        code="request_too_large",
    )


async def _error(send: Send, error: APIError) -> None:
    response = _error_response(error)
    await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def _error_response(error: APIError) -> JSONResponse:
    return JSONResponse(
        error_body(error.message, type=error.type, param=error.param, code=error.code),
        status_code=error.status,
        headers=error.headers,
    )


async def _api_error(request: Request, exc: APIError) -> Response:
    return _error_response(exc)


async def _recursa_error(request: Request, exc: RecursaError) -> Response:
    return _error_response(api_error(exc))


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    where = f"'{param}': " if param else ""
    return _error_response(APIError(400, f"{where}{first.get('msg')}.", param=param))


# --- routes: models and health ------------------------------------------------------------


async def _models(request: Request) -> dict[str, Any]:
    """The model this server runs, in OpenAI's list format."""
    state: ServeState = request.app.state.recursa
    return {
        "object": "list",
        "data": [
            {"id": state.agent.model_spec, "object": "model", "created": 0, "owned_by": "recursa"}
        ],
    }


async def _health(request: Request) -> Response:
    """200 when the database answers and the model is loaded or loading; 503 otherwise."""
    state: ServeState = request.app.state.recursa
    database = "ok"
    try:
        await asyncio.wait_for(
            asyncio.to_thread(state.agent.list_conversations, limit=1), timeout=5
        )
    except (RecursaError, TimeoutError) as exc:
        database = f"unavailable: {exc}" if str(exc) else "unavailable"
    healthy = database == "ok" and state.model_state != "failed"
    body = {
        "status": "ok" if healthy else "unavailable",
        "database": database,
        "model": {
            "name": state.agent.model_spec,
            "state": "loaded" if state.agent.model_loaded else state.model_state,
            "error": state.model_error,
        },
        "turns_in_flight": len(state.turns),
        "queue": {"active": state.gate.active, "waiting": state.gate.waiting},
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


# --- lifetime -------------------------------------------------------------------------------


async def _load_model(state: ServeState) -> None:
    state.model_state = "loading"
    try:
        await asyncio.to_thread(state.agent.load_model)
    except RecursaError as exc:
        state.model_state, state.model_error = "failed", str(exc)
        log.error("Loading the model failed: %s", exc)
    else:
        state.model_state = "loaded"


async def _shutdown(state: ServeState, loader: asyncio.Task[None] | None) -> None:
    """Stop turns still running (their partial replies are stored), then close the agent."""
    with anyio.CancelScope(shield=True):
        if state.turns:
            log.info(
                "Stopping %d replies in flight; they are stored as interrupted", len(state.turns)
            )
        await asyncio.gather(*(turn.stop() for turn in list(state.turns)))
        if loader is not None:
            await loader  # a half-loaded model must not be closed under its loader
        if state.owns_agent:
            await asyncio.to_thread(state.agent.close)


_Handler = Callable[[Request], Awaitable[Response]]
