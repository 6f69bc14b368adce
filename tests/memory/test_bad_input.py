"""Bad input gives a typed error and writes nothing, or is stored exactly: on both databases."""

from __future__ import annotations

import math
import random
import string
from typing import Any

import pytest
from recursa.memory import InvalidInputError, NewMessage, NewTrace, Store


def assert_nothing_written(store: Store, conversation_id: int) -> None:
    assert store.messages(conversation_id) == []
    assert store.get_conversation(conversation_id).last_seq == 0


@pytest.mark.parametrize("content", ["", "   \n\t ", None, 42, b"bytes", ["list"]])
def test_empty_or_non_string_message_is_refused(shared_store: Store, content: Any) -> None:
    """An empty, blank or non-string user message raises InvalidInputError and stores nothing."""
    conv = shared_store.create_conversation()
    with pytest.raises(InvalidInputError):
        shared_store.append_message(conv.id, "user", content)
    assert_nothing_written(shared_store, conv.id)


def test_five_megabyte_message_is_stored_byte_for_byte(store: Store) -> None:
    """A 5 MB message of many distinct words is stored exactly and stays searchable."""
    rng = random.Random(7)
    words = [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 10))) for _ in range(20000)
    ]
    text = "needle " + " ".join(rng.choice(words) + rng.choice(",. \n") for _ in range(700_000))
    text = (text * 2)[: 5 * 1024 * 1024]
    assert len(text.encode()) == 5 * 1024 * 1024
    conv = store.create_conversation()
    msg = store.append_message(conv.id, "user", text)
    assert store.get_message(msg.id).content == text
    assert [hit.id for hit in store.search("needle")] == [msg.id]


def test_nul_character_is_refused_on_both_databases(shared_store: Store) -> None:
    """Text with NUL (U+0000) raises InvalidInputError naming it; PostgreSQL text cannot hold it."""
    conv = shared_store.create_conversation()
    with pytest.raises(InvalidInputError, match="NUL"):
        shared_store.append_message(conv.id, "user", "before\x00after")
    with pytest.raises(InvalidInputError, match="NUL"):
        shared_store.append_message(conv.id, "user", "ok", metadata={"k": "a\x00b"})
    with pytest.raises(InvalidInputError, match="NUL"):
        shared_store.create_conversation(title="a\x00b")
    assert_nothing_written(shared_store, conv.id)


def test_other_control_characters_round_trip_exactly(shared_store: Store) -> None:
    """Every other control character, odd Unicode and line separators are stored exactly."""
    controls = "".join(chr(c) for c in range(1, 32)) + "\x7f\x80\x9f\u2028\u2029\ufeff\u200b"
    text = f"start{controls}end 🌧️ ﷽ e\u0301 \\ ' \" %s ? :x"
    meta = {"controls": controls, "nested": [{"x": text}]}
    conv = shared_store.create_conversation(title=controls, settings={"s": controls})
    msg = shared_store.append_message(conv.id, "user", text, metadata=meta)
    fetched = shared_store.get_message(msg.id)
    assert fetched.content == text and fetched.metadata == meta
    assert shared_store.get_conversation(conv.id).title == controls


def test_unpaired_surrogate_is_refused(shared_store: Store) -> None:
    """A string that is not valid Unicode (lone surrogate) raises InvalidInputError."""
    conv = shared_store.create_conversation()
    with pytest.raises(InvalidInputError, match="surrogate"):
        shared_store.append_message(conv.id, "user", "bad \ud800 text")
    with pytest.raises(InvalidInputError):
        shared_store.append_message(conv.id, "user", "ok", metadata={"k": "\udfff"})
    assert_nothing_written(shared_store, conv.id)


@pytest.mark.parametrize(
    "metadata",
    [
        ["not", "a", "dict"],
        "a string",
        {"obj": object()},
        {"set": {1, 2}},
        {"nan": math.nan},
        {"inf": math.inf},
        {1: "int key"},
        {"tuple": (1, 2)},
        {"bytes": b"x"},
    ],
    ids=["list", "str", "object", "set", "nan", "inf", "int-key", "tuple", "bytes"],
)
def test_invalid_metadata_is_refused_and_nothing_written(
    shared_store: Store, metadata: Any
) -> None:
    """Metadata that is not a plain JSON object raises InvalidInputError and stores nothing."""
    conv = shared_store.create_conversation()
    with pytest.raises(InvalidInputError):
        shared_store.append_message(conv.id, "user", "hello", metadata=metadata)
    with pytest.raises(InvalidInputError):
        shared_store.add_reply(conv.id, "hi", metadata=metadata)
    with pytest.raises(InvalidInputError):
        shared_store.create_conversation(settings=metadata)
    assert_nothing_written(shared_store, conv.id)


def test_metadata_is_preserved_exactly(shared_store: Store) -> None:
    """Metadata keeps its values, types, nesting and key order through the database."""
    meta = {"z": 1, "a": [1, 2.5, -0.0, 10**18, None, True, False, "s"], "m": {"": {"deep": []}}}
    conv = shared_store.create_conversation()
    msg = shared_store.append_message(conv.id, "user", "x", metadata=meta)
    fetched = shared_store.get_message(msg.id).metadata
    assert fetched == meta and list(fetched) == ["z", "a", "m"]
    assert type(fetched["a"][1]) is float and type(fetched["a"][3]) is int


def test_one_bad_message_in_an_import_writes_none_of_them(shared_store: Store) -> None:
    """append_messages validates every item first: one bad item means no message is stored."""
    conv = shared_store.create_conversation()
    items = [
        NewMessage("user", "fine"),
        NewMessage("user", "bad", metadata={"x": object()}),
        NewMessage("assistant", "also fine"),
    ]
    with pytest.raises(InvalidInputError):
        shared_store.append_messages(conv.id, items)
    with pytest.raises(InvalidInputError):
        shared_store.append_messages(conv.id, [NewMessage("robot", "who")])  # type: ignore[arg-type]
    assert_nothing_written(shared_store, conv.id)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s, c: s.append_message(c, "robot", "x"), "role"),
        (lambda s, c: s.append_message(c, "user", "x", status="done"), "status"),
        (lambda s, c: s.append_message(c, "user", "x", pinned="yes"), "pinned"),
        (lambda s, c: s.append_message(c, "user", "x", created_at="2020-01-01"), "created_at"),
        (lambda s, c: s.append_message("1", "user", "x"), "conversation_id"),
        (lambda s, c: s.create_conversation(kind="novel"), "kind"),
        (lambda s, c: s.search("x", match="some"), "match"),
        (lambda s, c: s.search(None), "query"),
        (lambda s, c: s.store_token_counts("t", {1: -1}), "token count"),
        (
            lambda s, c: s.add_reply(
                c, "x", trace=NewTrace(model="m", budget=1, total_tokens=1, plan={"f": object()})
            ),
            "trace.plan",
        ),
        (
            lambda s, c: s.add_summary(
                c,
                content="s",
                covers_from_seq=1,
                covers_through_seq=5,
                parent_id=None,
                token_count=1,
                tokenizer_id=None,
                model=None,
                prompt_version=None,
            ),
            "past",
        ),
    ],
    ids=[
        "role",
        "status",
        "pinned",
        "created_at",
        "id-type",
        "kind",
        "match",
        "query",
        "negative-count",
        "trace-plan",
        "summary-past-end",
    ],
)
def test_malformed_arguments_raise_invalid_input(
    shared_store: Store, call: Any, message: str
) -> None:
    """Wrong roles, statuses, types and ranges raise InvalidInputError naming the argument."""
    conv = shared_store.create_conversation()
    with pytest.raises(InvalidInputError, match=message):
        call(shared_store, conv.id)
    assert_nothing_written(shared_store, conv.id)
