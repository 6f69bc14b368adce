"""recursa.agent.interchange: JSONL and ChatGPT parsing rules, beyond what the CLI tests cover."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from recursa.agent.errors import InvalidInputError
from recursa.agent.interchange import read_conversations, render_export
from recursa.agent.interchange.chatgpt import parse_chatgpt
from recursa.agent.interchange.documents import ConversationDocument
from recursa.agent.interchange.jsonl import dump_jsonl, parse_jsonl

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "chatgpt_conversations.json"


def _fixture() -> list[dict]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_jsonl_dump_then_parse_gives_the_same_documents():
    docs = [
        ConversationDocument.parse(
            {
                "title": "a",
                "system_prompt": "s",
                "messages": [
                    {
                        "role": "user",
                        "content": "x\ny",
                        "created_at": "2024-01-02T03:04:05.123456Z",
                        "metadata": {"k": [1, {"z": None}]},
                        "pinned": True,
                    }
                ],
            }
        ),
        ConversationDocument.parse({"messages": []}),
    ]
    assert parse_jsonl(dump_jsonl(docs)) == docs


def test_jsonl_unknown_type_and_unknown_field_name_the_line():
    with pytest.raises(InvalidInputError, match="line 2: unknown type 'note'"):
        parse_jsonl('{"role": "user", "content": "a"}\n{"type": "note"}\n')
    with pytest.raises(InvalidInputError, match=r"line 1: colour: unknown field"):
        parse_jsonl('{"role": "user", "content": "a", "colour": "red"}\n')
    with pytest.raises(InvalidInputError, match="line 1: expected a JSON object, got list"):
        parse_jsonl("[1, 2]\n")
    with pytest.raises(InvalidInputError, match="line 1: role: Field required"):
        parse_jsonl('{"content": "a message without its role"}\n')
    with pytest.raises(InvalidInputError, match="no conversations"):
        parse_jsonl("\n\n")


def test_chatgpt_walks_parents_from_the_current_node():
    """Pointing current_node at the original branch imports that branch instead."""
    data = _fixture()
    data[0]["current_node"] = "aaa1c0de-0000-4000-8000-000000000005"
    docs, _ = parse_chatgpt(data)
    contents = [m.content for m in docs[0].messages]
    assert contents[-2:] == [
        "What about food? ORIGINAL-BRANCH",
        "Try pastéis de nata. ORIGINAL-BRANCH",
    ]
    assert len(contents) == 4


def test_chatgpt_without_current_node_follows_the_last_children():
    data = _fixture()
    expected, _ = parse_chatgpt(copy.deepcopy(data))
    del data[0]["current_node"]
    docs, _ = parse_chatgpt(data)
    assert docs[0].messages == expected[0].messages


def test_chatgpt_parent_loop_and_missing_parent_are_errors():
    data = _fixture()
    mapping = data[1]["mapping"]
    mapping["bbb2c0de-0000-4000-8000-000000000000"]["parent"] = (
        "bbb2c0de-0000-4000-8000-000000000003"
    )
    with pytest.raises(InvalidInputError, match=r"conversation \[1\] \('Portuguese'\).*loop"):
        parse_chatgpt(data)
    mapping["bbb2c0de-0000-4000-8000-000000000000"]["parent"] = "gone"
    with pytest.raises(InvalidInputError, match="missing parent 'gone'"):
        parse_chatgpt(data)


def test_chatgpt_single_conversation_object_is_accepted(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(_fixture()[1]), encoding="utf-8")
    batch = read_conversations(path)
    assert batch.format == "chatgpt" and len(batch.documents) == 1
    assert batch.documents[0].messages[1].metadata == {
        "chatgpt": {
            "conversation_id": "6630e1c8-2222-8000-9000-abcdefabcdef",
            "node_id": "bbb2c0de-0000-4000-8000-000000000003",
            "message_id": "bbb2c0de-0000-4000-8000-000000000003",
            "parent_id": "bbb2c0de-0000-4000-8000-000000000002",
            "model_slug": "gpt-4o-mini",
            "content_type": "text",
        }
    }


def test_chatgpt_conversation_with_nothing_visible_is_skipped_with_a_note():
    data = _fixture()
    hidden = {
        "id": "h",
        "message": {
            "author": {"role": "system"},
            "content": {"content_type": "text", "parts": [""]},
            "metadata": {},
        },
        "parent": None,
        "children": [],
    }
    data.append({"title": "Empty", "mapping": {"h": hidden}, "current_node": "h"})
    docs, notes = parse_chatgpt(data)
    assert len(docs) == 2 and any("'Empty'" in n and "skipped" in n for n in notes)


def test_markdown_export_names_status_and_pins():
    doc = ConversationDocument.parse(
        {
            "title": "T",
            "system_prompt": "Be brief.",
            "messages": [
                {
                    "role": "user",
                    "content": "q",
                    "created_at": "2024-05-01T12:30:00Z",
                    "pinned": True,
                },
                {"role": "assistant", "content": "part", "status": "interrupted"},
            ],
        }
    )
    md = render_export([doc], "md", conversation_ids=[7])
    assert md.splitlines()[0] == "# T"
    assert "> **System prompt:** Be brief." in md
    assert "## 1. user · 2024-05-01 12:30:00 UTC · pinned" in md
    assert "## 2. assistant · interrupted" in md
