"""`recursa conversations ...`: listing, reading, searching, renaming, archiving, deleting."""

from __future__ import annotations

import re

CONVERSATION_KEYS = {
    "id",
    "title",
    "system_prompt",
    "model",
    "kind",
    "settings",
    "archived",
    "created_at",
    "updated_at",
    "message_count",
    "last_seq",
}
MESSAGE_KEYS = {
    "id",
    "conversation_id",
    "seq",
    "role",
    "content",
    "status",
    "created_at",
    "metadata",
    "pinned",
    "rating",
}


def test_list_on_an_empty_database_says_how_to_start(run):
    result = run.ok("conversations", "list")
    assert "No conversations yet" in result.stdout
    assert run.json("conversations", "list") == []


def test_list_shows_a_table_and_json_newest_first(run, seed):
    first = seed("Lisbon trip", [("Plan a trip", "Sure")])
    second = seed("Recipes", [("Soup?", "Yes"), ("Salt?", "A pinch")])
    table = run.ok("conversations", "list").stdout
    assert "Lisbon trip" in table and "Recipes" in table
    assert table.index("Recipes") < table.index("Lisbon trip")
    rows = run.json("conversations", "list")
    assert [r["id"] for r in rows] == [second, first]
    assert set(rows[0]) == CONVERSATION_KEYS
    assert rows[0]["message_count"] == 4 and rows[0]["title"] == "Recipes"


def test_aliases_c_ls_and_cat_work(run, seed):
    cid = seed("Aliased", [("hi", "hello")])
    assert "Aliased" in run.ok("c", "ls").stdout
    assert "hello" in run.ok("c", "cat", str(cid)).stdout


def test_archive_hides_from_list_until_all_and_undo_restores(run, seed):
    cid = seed("Old stuff", [("a", "b")])
    assert "archived" in run.ok("conversations", "archive", str(cid)).stdout
    assert run.json("conversations", "list") == []
    rows = run.json("conversations", "list", "--all")
    assert rows[0]["archived"] is True
    assert "[archived]" in run.ok("c", "ls", "--all").stdout
    run.ok("conversations", "archive", "--undo", str(cid))
    assert run.json("conversations", "list")[0]["archived"] is False


def test_show_prints_text_markdown_and_json(run, seed):
    cid = seed("Trip", [("Plan a trip to Lisbon", "Day 1: Alfama")])
    text = run.ok("conversations", "show", str(cid)).stdout
    assert "Trip" in text and "#1 user" in text and "Day 1: Alfama" in text
    md = run.ok("conversations", "show", str(cid), "--md").stdout
    assert md.startswith("# Trip\n")
    assert re.search(r"^## 2\. assistant · \d{4}-\d\d-\d\d", md, re.M)
    data = run.json("conversations", "show", str(cid))
    assert set(data) == {"conversation", "messages"}
    assert set(data["conversation"]) == CONVERSATION_KEYS
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert set(data["messages"][0]) == MESSAGE_KEYS


def test_show_with_md_and_json_is_a_usage_error(run, seed):
    cid = seed("x", [("a", "b")])
    result = run("conversations", "show", str(cid), "--md", "--json")
    assert result.exit_code == 2 and "--md" in result.stderr


def test_unknown_id_is_one_line_naming_the_database_and_exit_2(run):
    for args in (
        ["conversations", "show", "42"],
        ["conversations", "rename", "42", "x"],
        ["conversations", "archive", "42"],
        ["conversations", "rm", "-y", "42"],
        ["conversations", "export", "42"],
        ["summaries", "42"],
        ["trace", "42"],
        ["prompt", "42", "hi"],
        ["ask", "-c", "42", "hi"],
        ["chat", "-c", "42"],
    ):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (args, result.stderr)
        assert "42" in lines[0] and "database:" in lines[0] and "Traceback" not in result.output


def test_an_id_from_another_database_is_not_found_here(run, seed, tmp_path):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    cid = seed("Elsewhere", [("only in the other db", "yes")], db_url=other)
    assert run("--db", other, "conversations", "show", str(cid)).exit_code == 0  # later --db wins
    result = run("conversations", "show", str(cid))
    assert result.exit_code == 2
    assert f"No conversation with id {cid}" in result.stderr
    assert "cli.db" in result.stderr and "other.db" not in result.stderr


def test_rename_changes_the_title(run, seed):
    cid = seed("Before", [("a", "b")])
    assert "'After'" in run.ok("conversations", "rename", str(cid), "After").stdout
    assert run.json("conversations", "list")[0]["title"] == "After"


def test_rm_asks_first_and_keeps_the_conversation_when_refused(run, seed):
    cid = seed("Keep me", [("a", "b")])
    refused = run("conversations", "rm", str(cid), input="n\n")
    assert refused.exit_code == 1 and "Delete conversation" in refused.stderr
    assert len(run.json("conversations", "list")) == 1
    accepted = run("conversations", "rm", str(cid), input="y\n")
    assert accepted.exit_code == 0 and "Deleted 1" in accepted.stdout
    assert run.json("conversations", "list") == []


def test_rm_with_yes_deletes_several_and_checks_all_ids_first(run, seed):
    a = seed("a", [("a", "b")])
    b = seed("b", [("c", "d")])
    missing = run("conversations", "rm", "--yes", str(a), "999")
    assert missing.exit_code == 2
    assert len(run.json("conversations", "list")) == 2  # nothing deleted
    run.ok("c", "rm", "-y", str(a), str(b))
    assert run.json("conversations", "list") == []


def test_search_finds_the_message_with_context_across_conversations(run, seed):
    a = seed("Pets", [("My cat is called Tom", "Nice name"), ("He likes fish", "Cats do")])
    b = seed("Garden", [("The cat digs in the tomato bed", "Try a fence")])
    out = run.ok("conversations", "search", "cat").stdout
    assert f"conversation {a}" in out and f"conversation {b}" in out
    assert "> #1 user: My cat is called Tom" in out
    assert "   #2 assistant: Nice name" in out  # the context line after the match
    hits = run.json("conversations", "search", "tomato")
    assert len(hits) == 1
    hit = hits[0]
    assert {
        "kind",
        "id",
        "conversation_id",
        "seq",
        "role",
        "snippet",
        "rank",
        "created_at",
        "conversation_title",
        "context",
    } <= set(hit)
    assert hit["conversation_id"] == b and hit["conversation_title"] == "Garden"
    assert [m["seq"] for m in hit["context"]] == [1, 2]


def test_search_can_be_limited_to_one_conversation(run, seed):
    a = seed("One", [("apples and pears", "ok")])
    seed("Two", [("apples only", "ok")])
    hits = run.json("conversations", "search", "apples", "-c", str(a))
    assert {h["conversation_id"] for h in hits} == {a}


def test_search_treats_fts_operators_as_plain_words(run, seed):
    seed("Ops", [("a plain message about NEAR and OR", "ok")])
    queries = ['"unbalanced', "NEAR(a b", "a* OR -b AND NOT c", "col:value ^x", "(((", "'; DROP"]
    for query in queries:
        result = run("conversations", "search", query)
        assert result.exit_code == 0, (query, result.output)
    assert run.json("conversations", "search", "NEAR OR")[0]["seq"] == 1


def test_search_with_an_empty_query_is_a_usage_error(run):
    result = run("conversations", "search", "  ")
    assert result.exit_code == 2 and "empty" in result.stderr


def test_brackets_in_titles_and_messages_are_printed_literally(run, seed):
    """Rich markup in user text is shown as typed, never interpreted (or crashing on '[/]')."""
    cid = seed("[red]Alarm[/] [/]", [("[bold]not bold[/bold] [/]", "ok [pinned]")])
    assert "[red]Alarm[/] [/]" in run.ok("conversations", "list").stdout
    shown = run.ok("conversations", "show", str(cid)).stdout
    assert "[red]Alarm[/] [/]" in shown and "[bold]not bold[/bold] [/]" in shown
    assert "ok [pinned]" in shown
    assert "[red]Alarm[/] [/]" in run.ok("conversations", "search", "bold").stdout
