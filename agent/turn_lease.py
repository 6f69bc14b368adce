"""Turn leases: a process's claim on answering a user message, kept alive while it answers.

A turn stores its user message together with a lease naming its process (host,
pid, a random token) and an expiry a few seconds ahead; a `Heartbeat` thread
moves the expiry on while the reply is planned and generated, and the lease is
removed when the turn ends. The next turn in the conversation uses `is_live` to
tell a message that is still being answered (by another thread or process) from
one whose process stopped before the reply was written: the lease is missing or
expired, or its process no longer runs on this host. That decision is exact on
one host and bounded by the lease's expiry across hosts; it no longer depends
on how old the message is.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from recursa.memory.errors import RecursaError
from recursa.memory.records import TurnLease

if TYPE_CHECKING:
    from recursa.memory.store import Store

__all__ = ["LEASE_TTL", "STORED_TTL", "Heartbeat", "is_live", "new_lease"]

log = logging.getLogger(__name__)

# How long a lease holds without renewal: a process that stops is known as gone at
# once on its own host (its pid), and after this long from another host.
LEASE_TTL = timedelta(seconds=30)
# A message stored now to be answered once the model is loaded (`Agent.add_message`)
# has no heartbeat meanwhile: its lease lasts long enough for a slow model load.
STORED_TTL = timedelta(minutes=5)
_RENEW_FRACTION = 3  # renewed three times per TTL, so one late renewal never lets it lapse


def new_lease(ttl: timedelta = LEASE_TTL, *, token: str | None = None) -> TurnLease:
    """A lease for this process, expiring `ttl` from now (a new token unless given)."""
    return TurnLease(
        host=_host(),
        pid=os.getpid(),
        token=token or secrets.token_hex(16),
        expires_at=datetime.now(UTC) + ttl,
    )


def is_live(lease: TurnLease | None, *, now: datetime | None = None) -> bool:
    """Whether the lease still covers its message: not expired, and its process runs.

    A process on another host cannot be looked at: there, the expiry decides.
    """
    if lease is None:
        return False
    if lease.expires_at <= (now or datetime.now(UTC)):
        return False
    if lease.host != _host():
        return True
    return _process_runs(lease.pid)


def _host() -> str:
    return socket.gethostname()[:255]


def _process_runs(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        return True  # os.kill there would end the process: the expiry decides
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user's
    # A process killed but not yet reaped by its parent is a zombie: it runs no more.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    fields = stat.rpartition(")")[2].split()
    return not fields or fields[0] not in ("Z", "X")


class Heartbeat:
    """Renews a message's lease every TTL/3 in a daemon thread until `stop()`.

    A renewal that fails (the database briefly unavailable) is logged and tried
    again at the next beat; the turn itself never fails because of it.
    """

    def __init__(self, store: Store, message_id: int, lease: TurnLease) -> None:
        self._store = store
        self._message_id = message_id
        self._lease = lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recursa-turn-lease", daemon=True)

    @property
    def lease(self) -> TurnLease:
        return self._lease

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing and remove the lease (the turn is over, replied to or not)."""
        self._stop.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join()
        try:
            self._store.drop_turn_lease(self._message_id, self._lease.token)
        except RecursaError as exc:
            # It lapses by itself at its expiry; until then the message counts as answered.
            log.warning("Could not remove the turn lease on message %s: %s", self._message_id, exc)

    def _run(self) -> None:
        every = LEASE_TTL.total_seconds() / _RENEW_FRACTION
        while not self._stop.wait(every):
            renewed = new_lease(token=self._lease.token)
            try:
                if not self._store.renew_turn_lease(self._message_id, renewed):
                    return  # taken over or removed: nothing left to keep alive
            except RecursaError as exc:
                log.warning(
                    "Renewing the turn lease on message %s failed: %s", self._message_id, exc
                )
                continue
            self._lease = renewed
