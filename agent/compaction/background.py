"""Background work between turns: folding the window after a reply, prefilling a prompt prefix.

`BackgroundWork` is one worker thread with a queue of tasks, each a kind
("compact" or "warm") and a conversation id. A reply is stored first and its
compaction queued after it, so the summarizer's request overlaps the user's
reading and typing instead of delaying the reply; a turn sent before it ends
asks `busy(...)` and plans against the previous summary. Tasks run one at a
time, in order; a task already queued is not queued twice. What a task does is
given by its handler (the Agent's), so this module knows nothing of the store.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Literal

__all__ = ["BackgroundWork", "TaskKind"]

log = logging.getLogger(__name__)

TaskKind = Literal["compact", "warm"]
Handler = Callable[[int], None]


class BackgroundWork:
    """A queue of (kind, conversation id) tasks run one at a time by one daemon thread.

    The thread starts with the first task and ends when the queue is empty, so an
    idle agent holds no thread. `close()` drops what is queued; a task already
    running finishes (the Agent makes it end quickly by closing the runtime).
    """

    def __init__(self, handlers: Mapping[TaskKind, Handler]) -> None:
        self._handlers = dict(handlers)
        self._cond = threading.Condition()
        self._queue: deque[tuple[TaskKind, int]] = deque()
        self._running: tuple[TaskKind, int] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, kind: TaskKind, conversation_id: int) -> bool:
        """Queue a task; False when it is already queued or the work is closed."""
        task = (kind, conversation_id)
        with self._cond:
            if self._closed or task in self._queue:
                return False
            self._queue.append(task)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="recursa-background", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
            return True

    def busy(self, conversation_id: int, kind: TaskKind | None = None) -> bool:
        """True while a task of `kind` (None: any) for the conversation is queued or running."""
        with self._cond:
            return any(self._matches(task, conversation_id, kind) for task in self._tasks())

    def wait(
        self,
        conversation_id: int | None = None,
        kind: TaskKind | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Block until no matching task is queued or running; False when `timeout` ran out."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (
                    not any(self._matches(task, conversation_id, kind) for task in self._tasks())
                ),
                timeout,
            )

    def close(self, timeout: float | None = None) -> None:
        """Drop queued tasks and wait up to `timeout` for the running one to end."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _tasks(self) -> list[tuple[TaskKind, int]]:
        running = [self._running] if self._running is not None else []
        return [*running, *self._queue]

    @staticmethod
    def _matches(
        task: tuple[TaskKind, int], conversation_id: int | None, kind: TaskKind | None
    ) -> bool:
        return (conversation_id is None or task[1] == conversation_id) and (
            kind is None or task[0] == kind
        )

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._thread = None
                    self._cond.notify_all()
                    return
                task = self._queue.popleft()
                self._running = task
            kind, conversation_id = task
            try:
                self._handlers[kind](conversation_id)
            except Exception:
                # Background work is an optimisation: the next turn compacts (or prefills)
                # itself when this failed, so the failure is logged, never raised.
                log.exception("Background %s of conversation %s failed", kind, conversation_id)
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()
