"""Dataset export from stored traces, its filters, JSONL reading errors, and reply ratings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from recursa.agent.training.dataset import (
    ExportReport,
    export_dataset,
    load_jsonl,
    write_jsonl,
)
from recursa.agent.training.rating import rate_reply
from recursa.memory import InvalidInputError, NewTrace, NotFoundError, Store


def _reply(
    store: Store,
    cid: int,
    question: str,
    answer: str,
    *,
    status: str = "complete",
    system: str = "Be helpful.",
) -> int:
    """Store a user turn and a reply whose trace holds the rendered prompt."""
    user = store.append_message(cid, "user", question)
    prompt = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    message, _ = store.add_reply(
        cid,
        answer,
        status=status,  # type: ignore[arg-type]
        trace=NewTrace(
            model="m",
            budget=100,
            total_tokens=10,
            user_message_id=user.id,
            plan={"messages": prompt, "budget": 100},
        ),
    )
    return message.id


def test_each_reply_becomes_its_traced_prompt_plus_the_reply(store: Store) -> None:
    """The example's messages are the trace's rendered prompt, then the reply."""
    cid = store.create_conversation(title="a").id
    _reply(store, cid, "What is 2+2?", "4.")
    store.append_message(cid, "user", "no reply to this one")
    examples = export_dataset(store)
    assert examples == [
        {
            "messages": [
                {"role": "system", "content": "Be helpful."},
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "4."},
            ]
        }
    ]


def test_failed_replies_are_dropped_unless_asked(store: Store) -> None:
    """Error and interrupted replies are left out by default and kept with include_failed."""
    cid = store.create_conversation().id
    _reply(store, cid, "q1", "complete answer")
    _reply(store, cid, "q2", "cut off", status="interrupted")
    _reply(store, cid, "q3", "broken", status="error")
    report = ExportReport()
    kept = export_dataset(store, report=report)
    assert [e["messages"][-1]["content"] for e in kept] == ["complete answer"]
    assert report.skipped_failed == 2
    everything = export_dataset(store, include_failed=True)
    assert [e["messages"][-1]["content"] for e in everything] == [
        "complete answer",
        "cut off",
        "broken",
    ]


def test_identical_examples_are_deduplicated_unless_asked(store: Store) -> None:
    """The same prompt and reply twice is exported once; dedupe=False keeps both."""
    a = store.create_conversation().id
    b = store.create_conversation().id
    _reply(store, a, "same question", "same answer")
    _reply(store, b, "same question", "same answer")
    _reply(store, b, "same question", "other answer")
    report = ExportReport()
    assert len(export_dataset(store, report=report)) == 2
    assert report.skipped_duplicate == 1
    assert len(export_dataset(store, dedupe=False)) == 3


def test_conversation_filter_and_unknown_conversation(store: Store) -> None:
    """conversation_ids limits the export; an unknown id is a NotFoundError."""
    a = store.create_conversation().id
    b = store.create_conversation().id
    _reply(store, a, "qa", "from a")
    _reply(store, b, "qb", "from b")
    only_b = export_dataset(store, conversation_ids=[b])
    assert [e["messages"][-1]["content"] for e in only_b] == ["from b"]
    with pytest.raises(NotFoundError):
        export_dataset(store, conversation_ids=[b + 1000])


def test_since_keeps_replies_created_at_or_after_the_moment(store: Store) -> None:
    """since filters on the reply's creation time; a future moment exports nothing."""
    cid = store.create_conversation().id
    _reply(store, cid, "q", "a")
    assert len(export_dataset(store, since=datetime.now(UTC) - timedelta(hours=1))) == 1
    assert export_dataset(store, since=datetime.now(UTC) + timedelta(hours=1)) == []
    assert len(export_dataset(store, since=(datetime.now(UTC) - timedelta(days=1)).date())) == 1


def test_ratings_select_good_replies_and_drop_bad_ones(store: Store) -> None:
    """only_rated keeps replies rated good; replies rated bad are dropped unless asked."""
    cid = store.create_conversation().id
    good = _reply(store, cid, "q1", "good one")
    bad = _reply(store, cid, "q2", "bad one")
    _reply(store, cid, "q3", "unrated one")
    assert rate_reply(store, good, True).rating == 1
    assert rate_reply(store, bad, False).rating == -1
    report = ExportReport()
    default = export_dataset(store, report=report)
    assert [e["messages"][-1]["content"] for e in default] == ["good one", "unrated one"]
    assert report.skipped_bad == 1
    rated = export_dataset(store, only_rated=True)
    assert [e["messages"][-1]["content"] for e in rated] == ["good one"]
    with_bad = export_dataset(store, include_bad=True)
    assert len(with_bad) == 3
    assert rate_reply(store, good, None).rating is None
    assert export_dataset(store, only_rated=True) == []


def test_only_replies_can_be_rated(store: Store) -> None:
    """Rating a user message is refused; an unknown id is NotFoundError."""
    cid = store.create_conversation().id
    user = store.append_message(cid, "user", "hello")
    with pytest.raises(InvalidInputError, match="only assistant replies"):
        rate_reply(store, user.id, True)
    with pytest.raises(NotFoundError):
        rate_reply(store, user.id + 999, True)


def test_written_jsonl_reads_back_unchanged(tmp_path: Path, store: Store) -> None:
    """write_jsonl then load_jsonl round-trips the examples, non-ASCII included."""
    cid = store.create_conversation().id
    _reply(store, cid, "Grüße?", "Grüße zurück — 你好")
    examples = export_dataset(store)
    path = tmp_path / "data.jsonl"
    assert write_jsonl(examples, path) == 1
    assert load_jsonl(path) == examples


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the dataset is empty"),
        ("\n\n", "the dataset is empty"),
        ('{"messages": []}\n{oops\n', 'line 1: "messages" must list'),
        ("\n{oops\n", "line 2: not valid JSON"),
        ("[1, 2]\n", 'line 1: expected an object with a "messages" list'),
        (
            '{"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "a"}]}\n',
            "line 1: the last message must be the assistant's reply",
        ),
        (
            '{"messages": [{"role": "robot", "content": "q"}, '
            '{"role": "assistant", "content": "a"}]}\n',
            "line 1: message 0 has role 'robot'",
        ),
        (
            '{"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}\n',
            'line 1: message 0 has no text "content"',
        ),
        (
            '{"messages": [{"role": "user", "content": "q"}, '
            '{"role": "assistant", "content": "  "}]}\n',
            "line 1: the assistant's reply is empty",
        ),
    ],
)
def test_malformed_or_empty_datasets_name_the_line(
    tmp_path: Path, content: str, message: str
) -> None:
    """Every malformed input is an InvalidInputError that names the file's line."""
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[")):
        load_jsonl(path)


def test_non_utf8_line_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    """A line that is not UTF-8 is named; a missing file says so."""
    path = tmp_path / "latin1.jsonl"
    good = json.dumps(
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    )
    path.write_bytes(good.encode() + b"\n" + b"\xff\xfe\n")
    with pytest.raises(InvalidInputError, match="line 2: not UTF-8"):
        load_jsonl(path)
    with pytest.raises(InvalidInputError, match="not found"):
        load_jsonl(tmp_path / "missing.jsonl")
