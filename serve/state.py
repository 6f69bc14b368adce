"""What one running service holds: the agent, its settings, the keys, the gate and the turns.

`ServeState` is made by `create_app` and kept on `app.state.recursa`; nothing
here is global, so several apps (tests, mounted sub-apps) never share state.
Errors of the library become OpenAI-format `APIError`s in `api_error`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from recursa.agent import (
    BudgetError,
    ConfigError,
    InvalidInputError,
    ModelError,
    NotFoundError,
    RecursaError,
    StoreError,
)
from recursa.serve.gate import ConversationLocks, ModelGate
from recursa.serve.protocol import APIError
from recursa.serve.security import Caller, KeyRing

if TYPE_CHECKING:
    from recursa.agent import Agent
    from recursa.agent.scoped import ScopedAgent
    from recursa.agent.settings import ServeSettings
    from recursa.serve.turns import TurnPump

__all__ = ["ServeState", "api_error"]

T = TypeVar("T")


@dataclass
class ServeState:
    """The service's handles; one per app."""

    agent: Agent
    settings: ServeSettings
    keys: KeyRing
    gate: ModelGate
    owns_agent: bool
    locks: ConversationLocks = field(default_factory=ConversationLocks)
    turns: set[TurnPump] = field(default_factory=set)
    # Lease holder names start with this process's id, so a lease names who holds it.
    process_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    model_state: str = "not loaded"
    model_error: str | None = None

    def scope(self, caller: Caller) -> ScopedAgent:
        return self.agent.scoped(caller.owner, sees_all=caller.sees_all)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking Agent call in a worker thread, bounded by the request timeout.

        On timeout the call goes on in its thread (a thread cannot be killed) and
        the client gets 504.
        """
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(fn, *args, **kwargs), self.settings.request_timeout
            )
        except TimeoutError:
            raise APIError(
                504,
                f"The request took longer than serve.request_timeout "
                f"({self.settings.request_timeout:g} s).",
                type="server_error",
                code="timeout",
            ) from None
        except RecursaError as exc:
            raise api_error(exc) from exc


def api_error(exc: RecursaError) -> APIError:
    """The HTTP answer to a library error: its message, a status and OpenAI's error type."""
    message = str(exc)
    if isinstance(exc, NotFoundError):
        return APIError(404, message, code="not_found")
    if isinstance(exc, BudgetError):
        return APIError(400, message, param="messages", code="context_length_exceeded")
    if isinstance(exc, InvalidInputError | ConfigError):
        return APIError(400, message)
    if isinstance(exc, ModelError):
        return APIError(502, message, type="server_error", code="model_error")
    if isinstance(exc, StoreError):
        return APIError(503, message, type="server_error", code="database_unavailable")
    return APIError(500, message, type="server_error")
