"""Turn leases: which process is answering a user message, stored beside the message.

Functions take an open session; `Store` wraps them in transactions.
"""

from __future__ import annotations

from recursa.memory.models import TurnLeaseRow
from recursa.memory.records import TurnLease
from sqlalchemy import delete, update
from sqlalchemy.orm import Session

__all__ = ["add", "drop", "get", "renew"]


def add(session: Session, message_id: int, lease: TurnLease) -> None:
    session.add(
        TurnLeaseRow(
            message_id=message_id,
            host=lease.host,
            pid=lease.pid,
            token=lease.token,
            expires_at=lease.expires_at,
        )
    )


def get(session: Session, message_id: int) -> TurnLease | None:
    row = session.get(TurnLeaseRow, message_id)
    if row is None:
        return None
    return TurnLease(host=row.host, pid=row.pid, token=row.token, expires_at=row.expires_at)


def renew(session: Session, message_id: int, lease: TurnLease, *, take_over: bool = False) -> bool:
    """Move the lease's expiry (or, with `take_over`, give it to `lease`'s holder).

    Without `take_over`, only the holder with the same token renews; False when the
    lease is gone or another holder has it. With `take_over`, the lease is made
    `lease` whoever held it (a message stored earlier is now being answered).
    """
    if take_over:
        session.execute(delete(TurnLeaseRow).where(TurnLeaseRow.message_id == message_id))
        add(session, message_id, lease)
        return True
    done = session.execute(
        update(TurnLeaseRow)
        .where(TurnLeaseRow.message_id == message_id, TurnLeaseRow.token == lease.token)
        .values(expires_at=lease.expires_at)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def drop(session: Session, message_id: int, token: str) -> None:
    """Remove the lease if `token` still holds it."""
    session.execute(
        delete(TurnLeaseRow).where(
            TurnLeaseRow.message_id == message_id, TurnLeaseRow.token == token
        )
    )
