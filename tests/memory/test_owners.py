"""Conversation owners, history keys and turn leases in the store (migration 0005)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


def test_owners_filter_listings_and_are_reported(store: Any) -> None:
    mine = store.create_conversation(title="mine", owner="key:a")
    theirs = store.create_conversation(title="theirs", owner="key:b")
    nobodys = store.create_conversation(title="nobody's")
    assert [c.id for c in store.list_conversations(owner="key:a")] == [mine.id]
    assert [c.id for c in store.list_conversations(owner=None)] == [nobodys.id]
    assert {c.id for c in store.list_conversations()} == {mine.id, theirs.id, nobodys.id}
    assert store.conversation_owner(theirs.id) == "key:b"
    assert store.conversation_owner(nobodys.id) is None


def test_a_history_key_is_claimed_once_and_only_by_its_owner(store: Any) -> None:
    conv = store.create_conversation(owner="key:a")
    store.set_history_key(conv.id, "f" * 64)
    assert store.claim_history("key:b", "f" * 64) is None
    assert store.claim_history("key:a", "f" * 64) == (conv.id, False)
    assert store.claim_history("key:a", "f" * 64) is None  # taken: a second claimant starts anew
    store.set_history_key(conv.id, "e" * 64)
    store.update_conversation(conv.id, archived=True)
    assert store.claim_history("key:a", "e" * 64) is None  # archived conversations stay put


def test_a_turn_lease_has_one_holder_until_released_or_expired(store: Any) -> None:
    conv = store.create_conversation()
    soon = datetime.now(UTC) + timedelta(seconds=60)
    assert store.take_lease(conv.id, "process-a", soon)
    assert not store.take_lease(conv.id, "process-b", soon)
    store.drop_lease(conv.id, "process-b")  # not the holder: nothing changes
    assert not store.take_lease(conv.id, "process-b", soon)
    store.drop_lease(conv.id, "process-a")
    assert store.take_lease(conv.id, "process-b", datetime.now(UTC) - timedelta(seconds=1))
    assert store.take_lease(conv.id, "process-c", soon)  # b's lease had expired


def test_claiming_a_history_takes_a_free_lease_in_the_same_write(store: Any) -> None:
    conv = store.create_conversation(owner="key:a")
    soon = datetime.now(UTC) + timedelta(seconds=60)
    store.set_history_key(conv.id, "a" * 64)
    assert store.claim_history("key:a", "a" * 64, lease=("p1", soon)) == (conv.id, True)
    assert not store.take_lease(conv.id, "p2", soon)
    # Releasing records the next key only for the lease's holder.
    assert not store.drop_lease(conv.id, "p2", history_key="b" * 64)
    assert store.drop_lease(conv.id, "p1", history_key="b" * 64)
    store.take_lease(conv.id, "p2", soon)
    assert store.claim_history("key:a", "b" * 64, lease=("p3", soon)) == (conv.id, False)
