"""Who runs the local model next: one generation at a time, a person's turn before background work.

A local model computes one thing at a time (the CPU is the bottleneck), so the
runtime serializes its work through a `Gate`. Background work (a summary folded
after a reply, a prompt prefix prefilled ahead of the next message) runs in
short steps and steps aside whenever a foreground generation is waiting, so a
turn the user sent never queues behind it. Importing this module does not
import torch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Gate"]


class Gate:
    """A lock with two priorities: foreground holders go first, background holders yield.

    Thread-local marks (`background()`) say which generations are background,
    so the summarizer, which knows nothing of priorities, runs as background
    when the compaction worker calls it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._foreground_waiting = 0
        self._local = threading.local()

    @contextmanager
    def background(self) -> Iterator[None]:
        """Mark the generations this thread starts inside the block as background work."""
        previous = getattr(self._local, "background", False)
        self._local.background = True
        try:
            yield
        finally:
            self._local.background = previous

    @property
    def in_background(self) -> bool:
        """True when the calling thread is inside `background()`."""
        return bool(getattr(self._local, "background", False))

    @property
    def foreground_waiting(self) -> bool:
        """True when a foreground holder waits (read without the lock: a hint, re-checked)."""
        return self._foreground_waiting > 0

    def acquire(self, *, background: bool) -> None:
        with self._cond:
            if background:
                while self._busy or self._foreground_waiting:
                    self._cond.wait()
            else:
                self._foreground_waiting += 1
                try:
                    while self._busy:
                        self._cond.wait()
                finally:
                    self._foreground_waiting -= 1
            self._busy = True

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    def step_aside(self) -> bool:
        """For a background holder: let waiting foreground work run, then take the gate back.

        Returns True when it stepped aside (the caller's view of shared state may be stale).
        """
        if not self._foreground_waiting:
            return False
        self.release()
        self.acquire(background=True)
        return True

    @contextmanager
    def held(self, *, background: bool) -> Iterator[None]:
        self.acquire(background=background)
        try:
            yield
        finally:
            self.release()
