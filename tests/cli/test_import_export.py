"""`recursa conversations export|import`: exact round trips, ChatGPT exports, and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from recursa.memory.store import NewMessage, Store

CHATGPT = Path(__file__).resolve().parent / "fixtures" / "chatgpt_conversations.json"


def _rich_conversation(db_url: str) -> int:
    """A conversation exercising every exported field: roles, times, metadata, status, pins."""
    with Store.open(db_url) as store:
        conv = store.create_conversation(title="Round trip ✓", system_prompt="Be terse.")
        t = datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=UTC)
        store.append_messages(
            conv.id,
            [
                NewMessage("system", "Context: a test.", created_at=t),
                NewMessage(
                    "user",
                    'Hello — ünïcödé, "quotes"\nand lines',
                    created_at=t,
                    metadata={"source": "test", "nested": {"a": [1, 2.5, None, True]}},
                ),
                NewMessage(
                    "assistant",
                    "Hi!",
                    created_at=t.replace(second=5),
                    metadata={"model": "x"},
                    pinned=True,
                ),
                NewMessage("user", "Second question", created_at=t.replace(minute=31)),
                NewMessage(
                    "assistant", "Half a rep", status="interrupted", created_at=t.replace(minute=32)
                ),
            ],
        )
        return conv.id


def _messages(db_url: str, cid: int) -> list[tuple]:
    with Store.open(db_url) as store:
        return [
            (m.seq, m.role, m.content, m.created_at.astimezone(UTC), m.metadata, m.status, m.pinned)
            for m in store.messages(cid)
        ]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_export_then_import_round_trips_exactly(db_url, run_on, tmp_path, fmt):
    """Roles, content, timestamps (to the microsecond), metadata, status, pins and order survive."""
    run = run_on(db_url)
    cid = _rich_conversation(db_url)
    out = tmp_path / f"conv.{fmt}"
    result = run.ok("conversations", "export", str(cid), "--format", fmt, "-o", str(out))
    assert f"to {out}" in result.stderr
    imported = run.json("conversations", "import", str(out))
    assert imported["format"] == fmt
    [new] = imported["conversations"]
    assert new["title"] == "Round trip ✓" and new["message_count"] == 5
    assert _messages(db_url, new["id"]) == _messages(db_url, cid)
    # Exporting the copy gives the same document again.
    again = run.ok("conversations", "export", str(new["id"]), "--format", fmt).stdout
    assert again == out.read_text(encoding="utf-8")


def test_export_all_to_jsonl_reimports_every_conversation_in_order(run, seed, tmp_path):
    seed("first", [("one", "1")])
    seed("second", [("two", "2"), ("three", "3")])
    out = tmp_path / "all.jsonl"
    run.ok("conversations", "export", "--all", "--format", "jsonl", "-o", str(out))
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["type"] == "conversation"
    assert sum(json.loads(line)["type"] == "conversation" for line in lines) == 2
    imported = run.json("conversations", "import", "--again", str(out))["conversations"]
    assert [(c["title"], c["message_count"]) for c in imported] == [("first", 2), ("second", 4)]


def test_export_all_json_is_a_list_and_one_id_is_an_object(run, seed, tmp_path):
    cid = seed("only", [("a", "b")])
    one = json.loads(run.ok("conversations", "export", str(cid)).stdout)
    assert one["format"] == "recursa.conversation/v1" and one["title"] == "only"
    many = json.loads(run.ok("conversations", "export", "--all").stdout)
    assert isinstance(many, list) and many[0]["messages"] == one["messages"]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(many))
    again = run.json("conversations", "import", "--again", str(path))  # the same one, again
    assert again["conversations"][0]["title"] == "only"


def test_export_markdown(run, seed):
    cid = seed("Notes", [("What is 2+2?", "4")])
    md = run.ok("conversations", "export", str(cid), "--format", "md").stdout
    assert md.startswith("# Notes\n") and "## 1. user" in md and "What is 2+2?" in md


def test_export_needs_ids_or_all_but_not_both(run, seed):
    cid = seed("x", [("a", "b")])
    assert run("conversations", "export").exit_code == 2
    assert run("conversations", "export", str(cid), "--all").exit_code == 2


def test_chatgpt_export_imports_only_the_current_thread(run):
    """Branches from an edited message and a regenerated turn are left out; ids are kept."""
    result = run.json("conversations", "import", str(CHATGPT))
    assert result["format"] == "chatgpt"
    assert [(c["title"], c["message_count"]) for c in result["conversations"]] == [
        ("Lisbon trip", 6),
        ("Portuguese", 2),
    ]
    assert any("left out 4" in note for note in result["notes"])
    lisbon = run.json("conversations", "show", str(result["conversations"][0]["id"]))
    messages = lisbon["messages"]
    text = "\n".join(m["content"] for m in messages)
    assert "ORIGINAL-BRANCH" not in text and "REGEN-BRANCH" not in text
    assert "search(" not in text and "Results:" not in text  # tool call and output left out
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert messages[2]["content"] == "What should we eat on day 2?"  # the edited version
    assert messages[4]["content"] == "Here is a photo of the menu. Is it good?\n\n[image]"
    assert messages[0]["created_at"] == "2024-05-01T12:30:00Z"
    original = messages[1]["metadata"]["chatgpt"]
    assert original["node_id"] == "aaa1c0de-0000-4000-8000-000000000003"
    assert original["conversation_id"] == "6630e1c8-1111-8000-9000-abcdefabcdef"
    assert original["model_slug"] == "gpt-4o"


def test_import_prints_what_it_imported(run):
    result = run.ok("conversations", "import", str(CHATGPT))
    assert "Imported conversation 1 'Lisbon trip' (6 messages)." in result.stdout
    assert "Note:" in result.stderr


def test_import_missing_file_is_a_usage_error(run, tmp_path):
    result = run("conversations", "import", str(tmp_path / "nope.json"))
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_import_invalid_json_names_the_position_and_imports_nothing(run, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"title": "x", "messages": [}')
    result = run("conversations", "import", str(bad))
    assert result.exit_code == 2
    assert "bad.json is not valid JSON" in result.stderr and "line 1, column" in result.stderr
    assert run.json("conversations", "list") == []


def test_import_a_document_with_a_bad_message_says_where(run, tmp_path):
    bad = tmp_path / "doc.json"
    bad.write_text(
        json.dumps(
            {"messages": [{"role": "user", "content": "ok"}, {"role": "robot", "content": "no"}]}
        )
    )
    result = run("conversations", "import", str(bad))
    assert result.exit_code == 2 and "messages[1].role" in result.stderr
    assert run.json("conversations", "list") == []


def test_jsonl_with_one_bad_line_names_it_and_imports_nothing(run, tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(
        '{"type": "conversation", "title": "good one"}\n'
        '{"role": "user", "content": "hi"}\n'
        '{"type": "conversation", "title": "second"}\n'
        '{"role": "assistant", "content": "fine"}\n'
        '{"role": "user", "content": "broken\n'
        '{"role": "assistant", "content": "never read"}\n'
    )
    result = run("conversations", "import", str(path))
    assert result.exit_code == 2
    assert "chat.jsonl, line 5: not valid JSON" in result.stderr
    assert "Nothing was imported" in result.stderr
    assert run.json("conversations", "list") == []


def test_jsonl_bad_field_on_a_line_is_reported_with_its_number(run, tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"role": "user", "content": "a"}\n\n{"role": "user", "content": 5}\n')
    result = run("conversations", "import", str(path))
    assert result.exit_code == 2 and "m.jsonl, line 3: content" in result.stderr


def test_headerless_jsonl_is_one_untitled_conversation(run, tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"role": "user", "content": "a"}\n{"role": "assistant", "content": "b"}\n')
    [conv] = run.json("conversations", "import", str(path))["conversations"]
    assert conv["title"] is None and conv["message_count"] == 2


@pytest.mark.parametrize(
    "content, expected",
    [
        ("", "is empty"),
        ("[]", "empty list"),
        ('"just a string"', "must be a JSON object"),
        ('[{"mapping": {}, "title": "t"}]', "'mapping' must be a non-empty object"),
        (
            '[{"mapping": {"a": {"message": null, "parent": null}}, "current_node": "zz"}]',
            "'current_node' 'zz' is not a node",
        ),
    ],
)
def test_malformed_files_are_usage_errors_with_the_reason(run, tmp_path, content, expected):
    path = tmp_path / "x.json"
    path.write_text(content)
    result = run("conversations", "import", str(path))
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_import_format_option_overrides_detection(run, tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text('{"role": "user", "content": "a"}\n')
    assert run("conversations", "import", str(path)).exit_code == 2  # not one JSON document
    assert run.json("conversations", "import", "--format", "jsonl", str(path))["format"] == "jsonl"


def test_a_file_that_is_not_utf8_is_refused(run, tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"title": "café"}'.encode("latin-1"))
    result = run("conversations", "import", str(path))
    assert result.exit_code == 2 and "not UTF-8" in result.stderr


def test_unwritable_output_is_an_error_without_traceback(run, seed, tmp_path):
    cid = seed("x", [("a", "b")])
    result = run("conversations", "export", str(cid), "-o", str(tmp_path / "no" / "dir.json"))
    assert result.exit_code in (1, 2) and "Error:" in result.stderr
