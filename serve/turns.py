"""A turn run for an HTTP request: the Agent's stream in a worker thread, fed to the event loop.

`TurnPump` runs `ScopedAgent.stream` in its own thread and hands its chunks
to the loop through an asyncio queue, so no database call or model step ever
blocks the server. `stop()` cancels the turn (the partial reply is stored as
interrupted, as Ctrl-C does in the CLI) and waits, shielded from cancellation,
until the reply is committed: a client that goes away never leaves a turn
half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
from recursa.agent import CancelToken

if TYPE_CHECKING:
    from recursa.agent import Reply
    from recursa.agent.scoped import ScopedAgent

__all__ = ["TurnPump", "uncancellable"]

T = TypeVar("T")

Kind = Literal["started", "chunk", "end", "error"]


class TurnPump:
    """One turn, running in a worker thread; `next()` awaits its items in order.

    `generation` holds the request's generation parameters (recursa's names),
    laid over the conversation's settings in the thread, with the turn.
    """

    def __init__(
        self,
        scope: ScopedAgent,
        conversation_id: int,
        text: str,
        generation: dict[str, Any],
    ) -> None:
        self.token = CancelToken()
        self.reply: Reply | None = None
        self._scope = scope
        self._args = (conversation_id, text, generation)
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[Kind, Any]] = asyncio.Queue()
        self._done = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="recursa-serve-turn", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def _put(self, item: tuple[Kind, Any]) -> None:
        # A closed loop means the server is gone and nobody reads: drop the item.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _run(self) -> None:
        conversation_id, text, generation = self._args
        try:
            # The conversation's own generation settings, with the request's on top.
            settings = self._scope.settings_for(conversation_id)
            params = settings.generation.params(**generation)
            stream = self._scope.stream(conversation_id, text, params=params, cancel=self.token)
            self._put(("started", None))
            for chunk in stream:
                self._put(("chunk", chunk))
            self.reply = stream.reply
            self._put(("end", stream.reply))
        except BaseException as exc:  # handed to the awaiting request, which answers it
            reply = getattr(exc, "reply", None)
            if reply is not None:
                self.reply = reply
            self._put(("error", exc))
        finally:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._done.set)

    async def next(self, timeout: float | None) -> tuple[Kind, Any]:
        """The next item; TimeoutError when none comes within `timeout` seconds."""
        if timeout is not None and timeout <= 0:
            raise TimeoutError
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def chunks(self, deadline: float) -> Any:
        """Text chunks until the turn ends; yields ("chunk", StreamChunk) and ends with "end"."""
        while True:
            kind, value = await self.next(deadline - self._loop.time())
            yield kind, value
            if kind in ("end", "error"):
                return

    async def stop(self) -> None:
        """Cancel the turn and wait until what it generated is stored (never cancelled itself)."""
        self.token.cancel()
        await uncancellable(self.wait())

    async def wait(self) -> None:
        """Until the worker thread has stored the reply (at once if it never started)."""
        if self._thread.ident is None:
            return
        await self._done.wait()


async def uncancellable(awaitable: Awaitable[T]) -> T:
    """Await to the end even if the awaiting task is cancelled meanwhile, then re-raise that.

    Cleanup that stores a reply must not be cut short: neither by Starlette's
    cancel scope when a client disconnects, nor by uvicorn cancelling requests
    at the end of a graceful shutdown.
    """
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    with anyio.CancelScope(shield=True):
        while True:
            try:
                result = await asyncio.shield(task)
                break
            except asyncio.CancelledError:
                if task.cancelled():
                    raise
                cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result
