"""Turn leases in the store (migration 0006): stored with a message, renewed, dropped."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from recursa.memory import Store
from recursa.memory.records import TurnLease


def new_lease() -> TurnLease:
    return TurnLease(
        host="this-host",
        pid=4242,
        token=secrets.token_hex(16),
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30),
    )


def test_a_lease_is_stored_with_its_message_renewed_by_its_token_and_dropped(
    shared_store: Store,
) -> None:
    """Stored in the message's transaction; only its token renews it; take_over replaces
    it; dropping needs the holder's token; it goes with its conversation."""
    cid = shared_store.create_conversation(title="lease").id
    lease = new_lease()
    msg = shared_store.append_message(cid, "user", "hello", lease=lease)
    assert shared_store.turn_lease(msg.id) == lease
    later = replace(lease, expires_at=lease.expires_at + timedelta(seconds=5))
    assert shared_store.renew_turn_lease(msg.id, later)
    assert shared_store.turn_lease(msg.id) == later
    other = new_lease()
    assert not shared_store.renew_turn_lease(msg.id, other)
    shared_store.drop_turn_lease(msg.id, other.token)  # not its holder: kept
    assert shared_store.turn_lease(msg.id) == later
    assert shared_store.renew_turn_lease(msg.id, other, take_over=True)
    assert shared_store.turn_lease(msg.id) == other
    shared_store.drop_turn_lease(msg.id, other.token)
    assert shared_store.turn_lease(msg.id) is None
    kept = shared_store.append_message(cid, "user", "again", lease=new_lease())
    shared_store.delete_conversation(cid)
    assert shared_store.turn_lease(kept.id) is None
