"""`recursa ask`: one turn from the shell, TEXT and/or stdin, streaming or JSON, exit codes."""

from __future__ import annotations

import pytest

ASK_KEYS = {
    "conversation_id",
    "message_id",
    "user_message_id",
    "text",
    "status",
    "model",
    "trace_id",
    "usage",
}


def test_ask_streams_the_reply_and_prints_the_new_conversation_id_on_stderr(run):
    result = run.ok("ask", "-m", "scripted", "Hello there")
    assert result.stdout == "OK.\n"
    assert result.stderr.strip() == "conversation 1"
    convs = run.json("conversations", "list")
    assert convs[0]["title"] == "Hello there" and convs[0]["model"] == "scripted"


def test_ask_json_has_the_reply_usage_and_trace_id(run):
    data = run.json("ask", "-m", "scripted", "Hi")
    assert set(data) == ASK_KEYS
    assert data["text"] == "OK." and data["status"] == "complete" and data["model"] == "scripted"
    assert data["usage"]["completion_tokens"] >= 1 and isinstance(data["trace_id"], int)


def test_ask_reads_standard_input_after_text(run):
    data = run.json("ask", "-m", "scripted", "summarize this", input="line one\nline two\n")
    show = run.json("conversations", "show", str(data["conversation_id"]))
    assert show["messages"][0]["content"] == "summarize this\n\nline one\nline two\n"


def test_ask_reads_standard_input_alone(run):
    data = run.json("ask", "-m", "scripted", input="only piped text")
    show = run.json("conversations", "show", str(data["conversation_id"]))
    assert show["messages"][0]["content"] == "only piped text"


def test_ask_continue_keeps_the_conversation_and_its_model(run):
    first = run.json("ask", "-m", "scripted", "one")
    # No -m: the conversation's own model (scripted) is used, not the default model.
    second = run.json("ask", "-c", str(first["conversation_id"]), "two")
    assert second["conversation_id"] == first["conversation_id"] and second["model"] == "scripted"
    show = run.json("conversations", "show", str(first["conversation_id"]))
    assert [m["content"] for m in show["messages"]] == ["one", "OK.", "two", "OK."]


def test_ask_system_prompt_reaches_the_model(run):
    data = run.json("ask", "-m", "scripted", "--system", "Answer in French.", "-t", "Fr", "hi")
    info = run.json("conversations", "show", str(data["conversation_id"]))["conversation"]
    assert info["system_prompt"] == "Answer in French." and info["title"] == "Fr"
    trace = run.json("trace", str(data["message_id"]))
    assert "Answer in French." in trace["plan"]["messages"][0]["content"]


def test_ask_title_with_continue_is_a_usage_error(run):
    first = run.json("ask", "-m", "scripted", "one")
    result = run("ask", "-c", str(first["conversation_id"]), "-t", "New title", "two")
    assert result.exit_code == 2 and "conversations rename" in result.stderr


def test_ask_with_nothing_to_ask_is_a_usage_error(run):
    result = run("ask", "-m", "scripted", input="   \n")
    assert result.exit_code == 2 and "Nothing to ask" in result.stderr


def test_ask_with_an_unknown_model_is_a_model_error_exit_1(run):
    result = run("ask", "-m", "no-such-model", "hi")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: Unknown model spec 'no-such-model'")


def test_ask_with_an_unreachable_server_is_exit_1(run):
    result = run("ask", "-m", "openai:m@http://127.0.0.1:9/v1", "hi")
    assert result.exit_code == 1 and "Error:" in result.stderr
    assert "Traceback" not in result.output


def test_a_model_failing_mid_reply_exits_1_and_the_failure_is_stored(run, openai_server):
    behaviour = openai_server.Behaviour(models=("m",), cut_after_chunks=2)
    with openai_server.serve(behaviour) as server:
        result = run("ask", "-m", f"openai:m@{server.base_url}", "Tell me a story")
    assert result.exit_code == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("Error: The model failed while replying")
    messages = run.json("conversations", "show", "1")["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "error"),
    ]
    assert "error" in messages[1]["metadata"]


def test_ask_json_through_an_openai_compatible_server(run, openai_server):
    with openai_server.serve(openai_server.Behaviour(models=("m",))) as server:
        data = run.json("ask", "-m", f"openai:m@{server.base_url}", "Hello")
    assert data["text"] == "Hello from the test server, one word at a time."
    assert data["model"] == f"openai:m@{server.base_url}"
    assert data["usage"]["prompt_tokens"] > 0


def test_ask_with_a_bad_setting_in_the_environment_is_a_usage_error(run, monkeypatch):
    monkeypatch.setenv("RECURSA_POLICY", "nonsense")
    result = run("ask", "-m", "scripted", "hi")
    assert result.exit_code == 2 and "policy" in result.stderr


def test_ask_a_message_with_a_nul_character_is_refused(run):
    result = run("ask", "-m", "scripted", "a\x00b")
    assert result.exit_code == 2 and "NUL" in result.stderr


@pytest.mark.model
def test_ask_with_the_real_default_model_stores_a_reply_and_its_trace(run):
    """SmolLM2-135M end to end through the CLI (greedy): a non-empty reply with its trace."""
    pytest.importorskip("torch")
    data = run.json("ask", "--max-new-tokens", "12", "Name one colour of the rainbow.")
    assert data["model"] == "smollm2-135m" and data["status"] == "complete"
    assert data["text"].strip()
    show = run.json("conversations", "show", str(data["conversation_id"]))
    assert show["messages"][1]["content"] == data["text"]
    trace = run.json("trace", str(data["message_id"]))
    assert trace["plan"]["tokenizer_id"] != "scripted-words-v1"
    assert 0 < trace["total_tokens"] <= trace["budget"]
    assert trace["usage"]["completion_tokens"] >= 1
