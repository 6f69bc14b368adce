"""Import and export of conversation documents: validation and exact round trips."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from recursa.agent import Agent
from recursa.agent.errors import InvalidInputError
from recursa.agent.interchange.documents import ConversationDocument
from recursa.agent.runtime.scripted import ScriptedRuntime

MakeAgent = Callable[..., Agent]

DOC: dict[str, Any] = {
    "title": "Trip planning",
    "system_prompt": "You plan trips.",
    "messages": [
        {
            "role": "system",
            "content": "Budget is tight.",
            "created_at": "2024-03-01T09:00:00Z",
            "metadata": {"source": "import"},
        },
        {
            "role": "user",
            "content": "We leave on 12 May for Lisbon.",
            "created_at": "2024-03-01T09:01:30.250000+02:00",
            "metadata": {"lang": "en", "tags": ["trip", 1, None, {"deep": True}]},
        },
        {
            "role": "assistant",
            "content": "Noted: Lisbon, 12 May.",
            "created_at": "2024-03-01T09:02:00Z",
        },
        {"role": "user", "content": 'ünïcødé ✓ and "quotes"'},
    ],
}


def test_import_preserves_roles_content_order_timestamps_and_metadata(
    make_agent: MakeAgent,
) -> None:
    """Imported messages keep their roles, content, order, exact instants and metadata."""
    runtime = ScriptedRuntime()
    agent = make_agent(runtime)
    cid = agent.import_conversation(DOC)
    conv = agent.get_conversation(cid)
    assert conv.title == "Trip planning" and conv.system_prompt == "You plan trips."
    msgs = agent.messages(cid)
    assert [(m.role, m.content) for m in msgs] == [
        (m["role"], m["content"]) for m in DOC["messages"]
    ]
    assert [m.seq for m in msgs] == [1, 2, 3, 4]
    assert msgs[1].created_at == datetime(2024, 3, 1, 7, 1, 30, 250000, tzinfo=UTC)
    assert msgs[1].metadata == DOC["messages"][1]["metadata"]
    assert msgs[2].metadata == {}
    assert runtime.calls == []  # importing needs no model calls
    assert agent.summaries(cid) == []


def test_export_then_import_round_trips_exactly(make_agent: MakeAgent) -> None:
    """export -> import -> export gives the same document."""
    agent = make_agent()
    cid = agent.import_conversation(DOC)
    agent.send(cid, "And back on the 20th.")
    first = agent.export_conversation(cid)
    again = agent.import_conversation(json.dumps(first))
    second = agent.export_conversation(again)
    assert second == first
    assert first["format"] == "recursa.conversation/v1"
    assert [m["role"] for m in first["messages"]][-2:] == ["user", "assistant"]


def test_imported_timestamps_appear_in_plans_and_traces(make_agent: MakeAgent) -> None:
    """Plans and traces carry the imported messages' timestamps and metadata."""
    agent = make_agent()
    cid = agent.import_conversation(DOC)
    reply = agent.send(cid, "Remind me of the date?")
    window = reply.trace.plan.section("window")
    assert window is not None
    by_content = {m.content: m for m in window.messages}
    imported = by_content["We leave on 12 May for Lisbon."]
    assert imported.created_at == datetime(2024, 3, 1, 7, 1, 30, 250000, tzinfo=UTC)
    assert imported.metadata["tags"] == ["trip", 1, None, {"deep": True}]


def test_compact_after_import_builds_the_summary(make_agent: MakeAgent) -> None:
    """compact(force=True) summarizes an imported history on demand."""
    agent = make_agent()
    long_doc = {
        "messages": [
            {"role": "user" if i % 2 == 0 else "assistant", "content": f"line {i} of history"}
            for i in range(20)
        ]
    }
    cid = agent.import_conversation(long_doc)
    report = agent.compact(cid, force=True)
    assert report.status == "compacted" and report.when == "explicit"
    chain = agent.summaries(cid)
    assert chain[0].covers_from_seq == 1 and chain[0].covers_through_seq == 18


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ([], "JSON object"),
        ("not json at all", "not valid JSON"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, r"messages\[0\]\.role"),
        ({"messages": [{"role": "user", "content": 5}]}, r"messages\[0\]\.content"),
        ({"messages": [{"role": "user"}]}, r"messages\[0\]\.content"),
        (
            {"messages": [{"role": "user", "content": "x", "created_at": "yesterday"}]},
            r"messages\[0\]\.created_at.*ISO-8601",
        ),
        (
            {"messages": [{"role": "user", "content": "x", "created_at": 1700000000}]},
            r"created_at",
        ),
        ({"messages": [{"role": "user", "content": "x", "metadata": [1]}]}, "metadata"),
        ({"messages": [{"role": "user", "content": "x", "colour": "red"}]}, "unknown field"),
        ({"title": 3, "messages": []}, "title"),
        ({"messages": [], "extra": 1}, "unknown field"),
    ],
)
def test_malformed_documents_are_rejected_and_nothing_is_written(
    make_agent: MakeAgent, doc: Any, where: str
) -> None:
    """Wrong types, unknown roles or keys and bad timestamps: InvalidInputError, no rows."""
    agent = make_agent()
    with pytest.raises(InvalidInputError, match=where):
        agent.import_conversation(doc)
    assert agent.list_conversations(include_archived=True) == []


def test_store_rejection_mid_import_leaves_nothing(make_agent: MakeAgent) -> None:
    """A document the store refuses (NUL in content) is not half-imported."""
    agent = make_agent()
    bad = {
        "title": "x",
        "messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": "bad\x00byte"}],
    }
    with pytest.raises(InvalidInputError):
        agent.import_conversation(bad)
    assert agent.list_conversations(include_archived=True) == []


def test_document_model_parses_naive_times_as_utc() -> None:
    """A timestamp without a zone is read as UTC."""
    doc = ConversationDocument.parse(
        {"messages": [{"role": "user", "content": "x", "created_at": "2024-01-02T03:04:05"}]}
    )
    assert doc.messages[0].created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_imported_conversation_keeps_its_last_activity(make_agent: MakeAgent) -> None:
    """An imported conversation's last activity is its last message's time, not the import's."""
    agent = make_agent(ScriptedRuntime())
    fresh = agent.create_conversation(title="Started today")
    old_doc = {
        "title": "Last spring",
        "messages": [
            {"role": "user", "content": "Hello.", "created_at": "2024-03-01T09:00:00Z"},
            {"role": "assistant", "content": "Hi.", "created_at": "2024-03-01T09:05:00Z"},
        ],
    }
    old = agent.import_conversation(old_doc)
    assert agent.get_conversation(old).updated_at == datetime(2024, 3, 1, 9, 5, tzinfo=UTC)
    assert [c.id for c in agent.list_conversations()] == [fresh, old]
