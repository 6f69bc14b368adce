"""Admission to the model: a FIFO queue with a length limit, and per-conversation locks.

`ModelGate` lets `slots` turns run at once (1 for a local model, more for an
HTTP model server) and queues the rest in arrival order; when `queue_limit`
requests already wait, `QueueFull` carries a Retry-After estimate from the
recent turn durations. `ConversationLocks` serialises turns in one
conversation within this process (the database lease does it across processes).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["ConversationLocks", "ModelGate", "QueueFull"]


class QueueFull(Exception):
    """The model's queue is full; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int, waiting: int) -> None:
        super().__init__(f"{waiting} requests are already waiting for the model")
        self.retry_after = retry_after
        self.waiting = waiting


class ModelGate:
    """`slots` turns at a time, the rest waiting first come, first served."""

    def __init__(self, slots: int, queue_limit: int) -> None:
        self.slots = slots
        self.queue_limit = queue_limit
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._mean_s = 1.0  # running mean of a turn's duration, for Retry-After

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def active(self) -> int:
        return self._active

    def check(self) -> None:
        """Raise QueueFull now if a new request would have to wait and the queue is full."""
        if self._active >= self.slots and len(self._waiters) >= self.queue_limit:
            waits = math.ceil((len(self._waiters) + 1) / self.slots)
            raise QueueFull(max(1, math.ceil(waits * self._mean_s)), len(self._waiters))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the block; waits in FIFO order; QueueFull when full."""
        if self._active < self.slots and not self._waiters:
            self._active += 1
        else:
            self.check()
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # the slot was handed over just as we left
                else:
                    self._waiters.remove(waiter)
                raise
        start = asyncio.get_running_loop().time()
        try:
            yield
        finally:
            elapsed = asyncio.get_running_loop().time() - start
            self._mean_s = 0.8 * self._mean_s + 0.2 * elapsed
            self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self._active -= 1


class ConversationLocks:
    """One asyncio lock per conversation in use, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, conversation_id: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(conversation_id, (asyncio.Lock(), 0))
        self._locks[conversation_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[conversation_id]
            if users <= 1:
                del self._locks[conversation_id]
            else:
                self._locks[conversation_id] = (lock, users - 1)
