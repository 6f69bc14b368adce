"""Reply streams: `ReplyStream` (an iterator of a turn's chunks) and its asyncio twin.

A stream wraps the turn's generator; cancelling or closing it lets the turn
store the partial reply as interrupted before the stream ends.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Generator, Iterator

from recursa.agent.boundary import Reply, StreamChunk
from recursa.agent.runtime.protocol import CancelToken

__all__ = ["AsyncReplyStream", "ReplyStream", "skip_placeholders"]


class ReplyStream:
    """An iterator of `StreamChunk`s for one turn; the last one carries the Reply.

    `cancel()` (from any thread) stops generation: the partial reply is stored
    with status "interrupted" and its trace, and the stream ends with it.
    Leaving the loop early and calling `close()` (or leaving a `with` block,
    also by an exception) does the same. A KeyboardInterrupt raised while the
    model generates stores the partial reply as interrupted before it propagates.
    """

    def __init__(self, gen: Generator[StreamChunk, None, None], cancel: CancelToken) -> None:
        self._gen = gen
        self._cancel = cancel
        self.reply: Reply | None = None

    @property
    def cancel_token(self) -> CancelToken:
        return self._cancel

    def cancel(self) -> None:
        """Ask the generation to stop; the partial reply is stored as interrupted."""
        self._cancel.cancel()

    def __iter__(self) -> Iterator[StreamChunk]:
        return self

    def __next__(self) -> StreamChunk:
        chunk = next(self._gen)
        if chunk.reply is not None:
            self.reply = chunk.reply
        return chunk

    def close(self) -> None:
        """Stop early; whatever was generated is stored as an interrupted reply."""
        self._cancel.cancel()
        self._gen.close()

    def __enter__(self) -> ReplyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def text(self) -> str:
        """Consume the stream and return the reply's text."""
        for _ in self:
            pass
        return self.reply.text if self.reply else ""


class AsyncReplyStream:
    """The async twin of `ReplyStream`: the turn runs in a worker thread, never on the loop."""

    def __init__(self, sync: ReplyStream) -> None:
        self._sync = sync
        self._queue: asyncio.Queue[StreamChunk | BaseException | None] | None = None
        self._thread: threading.Thread | None = None
        self.reply: Reply | None = None

    def cancel(self) -> None:
        self._sync.cancel()

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self

    def _start(self) -> asyncio.Queue[StreamChunk | BaseException | None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StreamChunk | BaseException | None] = asyncio.Queue()

        def pump() -> None:
            try:
                for chunk in self._sync:
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except BaseException as exc:  # handed to the awaiting task, which re-raises it
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        self._thread = threading.Thread(target=pump, name="recursa-astream", daemon=True)
        self._thread.start()
        return queue

    async def __anext__(self) -> StreamChunk:
        if self._queue is None:
            self._queue = self._start()
        try:
            item = await self._queue.get()
        except asyncio.CancelledError:
            self._sync.cancel()  # the awaiting task went away: stop the model too
            raise
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        if item.reply is not None:
            self.reply = item.reply
        return item

    async def aclose(self) -> None:
        """Stop early and wait until the partial reply is stored."""
        self._sync.cancel()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)


def skip_placeholders(
    gen: Generator[StreamChunk, None, None],
) -> Generator[StreamChunk, None, None]:
    """Yield the turn's chunks, dropping empty placeholders."""
    try:
        for chunk in gen:
            if chunk.event == "text" and not chunk.text:
                continue
            yield chunk
    finally:
        gen.close()
