"""The CLI's last line of defence and the library's boundary: crashes, streams, ids, configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_helpers import run_main

RECURSA_MAIN = "from recursa.tui.cli import main; main()"


def test_an_unexpected_exception_is_one_line_naming_the_log_that_holds_its_traceback(
    sqlite_url, recursa_home, monkeypatch
):
    """A bug (here: the store raising a plain RuntimeError) ends in one line naming the log
    file; the log holds the traceback; --debug prints it too; exit code 1."""
    from recursa.memory.store import Store

    def broken(self, **kwargs):
        raise RuntimeError("boom \x1b[2J")

    monkeypatch.setattr(Store, "list_conversations", broken)
    outcome = run_main(["--db", sqlite_url, "conversations", "list"])
    assert outcome.code == 1
    (line,) = outcome.stderr.strip().splitlines()
    log = recursa_home / "data" / "logs" / "recursa.log"
    assert line.startswith("Error: unexpected failure (RuntimeError: boom \\x1b[2J)")
    assert str(log) in line and "--debug" in line
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom" in text
    assert "recursa --db" in text  # the command that failed
    debug = run_main(["--db", sqlite_url, "--debug", "conversations", "list"])
    assert debug.code == 1 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("Error: unexpected failure")


def test_closed_stdin_full_disk_and_broken_pipe_end_cleanly(tmp_path):
    """`ask <&-` reads no stdin; `list --json > /dev/full` and `list | head -0` end with one
    line (or quietly for a closed pipe), never a traceback."""
    url = f"sqlite:///{tmp_path / 'io.db'}"
    env = {**os.environ, "RECURSA_RECALL__EMBEDDER": "none"}
    base = [sys.executable, "-c", RECURSA_MAIN, "--db", url]
    closed = subprocess.run(
        [*base, "ask", "-m", "scripted", "hi"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        preexec_fn=lambda: os.close(0),
    )
    assert closed.returncode == 0 and "Traceback" not in closed.stderr, closed.stderr
    if Path("/dev/full").exists():
        with open("/dev/full", "w") as full:
            res = subprocess.run(
                [*base, "conversations", "list", "--json"],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                timeout=120,
            )
        assert res.returncode == 1
        (line,) = res.stderr.strip().splitlines()
        assert line.startswith("Error: cannot write the output (No space left on device)")
    for _ in range(3):  # seed enough rows that the pipe closes while we write
        subprocess.run(
            [*base, "ask", "-m", "scripted", "hi " * 50],
            env=env,
            timeout=120,
            capture_output=True,
            check=True,
        )
    pipe = subprocess.Popen(
        [*base, "conversations", "show", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert pipe.stdout is not None
    pipe.stdout.close()  # the reader goes away at once
    _, err = pipe.communicate(timeout=120)
    assert b"Traceback" not in err and b"Exception ignored" not in err, err


@pytest.mark.parametrize("bad", [0, -1, 2**63, 2**64, True, "3", 1.0])
def test_agent_methods_refuse_ids_outside_64_bits_as_invalid_input(make_agent, bad):
    """The library boundary: every id is a positive 64-bit integer (InvalidInputError, which
    the CLI maps to exit 2), on the first call that takes it."""
    from recursa.agent import InvalidInputError

    agent = make_agent()
    calls = [
        lambda: agent.get_conversation(bad),
        lambda: agent.messages(bad),
        lambda: agent.rename_conversation(bad, "x"),
        lambda: agent.delete_conversation(bad),
        lambda: agent.trace(bad),
        lambda: agent.get_message(bad),
        lambda: agent.rate(bad, True),
        lambda: agent.summaries(bad),
        lambda: agent.export_conversation(bad),
        lambda: agent.send(bad, "hi"),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError):
            call()


def test_an_unanswered_message_is_marked_and_the_model_sees_it(make_agent):
    """After a crash between the user message and its reply, the next turn stores an
    interrupted reply marking the gap, notes it in the trace, and the prompt shows it in place."""
    from recursa.agent.turn_lease import new_lease
    from recursa.agent.turns import UNANSWERED_REPLY

    agent = make_agent()
    # A user message whose turn lease is held by a running process (this one) is being
    # answered: it is left alone.
    busy = agent.create_conversation(title="in flight")
    agent._store.append_message(busy, "user", "being answered elsewhere", lease=new_lease())
    assert not any("had no reply" in n for n in agent.send(busy, "meanwhile").trace.notes)
    assert [m.role for m in agent.messages(busy)] == ["user", "user", "assistant"]

    cid = agent.create_conversation(title="crash")
    # No lease: the process that stored it stopped before its reply; a second later it
    # is marked, whatever its age.
    agent._store.append_message(cid, "user", "first question")
    reply = agent.send(cid, "second question")
    history = agent.messages(cid)
    assert [(m.role, m.status) for m in history] == [
        ("user", "complete"),
        ("assistant", "interrupted"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert history[1].content == UNANSWERED_REPLY and history[1].metadata == {"unanswered": True}
    assert any("had no reply" in note for note in reply.trace.notes)
    roles = [(m["role"], m["content"]) for m in reply.trace.messages if m["role"] != "system"]
    assert roles == [
        ("user", "first question"),
        ("assistant", UNANSWERED_REPLY),
        ("user", "second question"),
    ]
    # A conversation that ends with its reply gets no mark.
    again = agent.send(cid, "third")
    assert not any("had no reply" in note for note in again.trace.notes)


def test_a_failed_ask_creates_nothing_and_says_so(run):
    """A bad model, system prompt or message: no conversation is created, the error says
    nothing was stored and blames the right input; with --json, an error object on stdout."""
    big = "word " * 6000
    system = run("ask", "-m", "scripted", "-s", big, "hi")
    assert system.exit_code == 2 and "Shorten the system prompt" in system.stderr
    assert "Nothing was stored" in system.stderr and "max_prompt_tokens" not in system.stderr
    message = run("ask", "-m", "scripted", "--json", big)
    assert message.exit_code == 2 and "shorten the message" in message.stderr
    import json

    data = json.loads(message.stdout)
    assert data["message_stored"] is False and data["conversation_id"] is None
    capped = run("ask", "-m", "scripted", big, input=None)
    assert "context window" in capped.stderr
    assert run.json("conversations", "list") == []


def test_import_skips_what_was_imported_before_unless_again(run, tmp_path):
    """One file imported twice: refused the second time (nothing new); --again imports a copy;
    a file with one new conversation imports that one and notes the other."""
    import json

    doc = {"title": "A", "messages": [{"role": "user", "content": "hello"}]}
    first = tmp_path / "a.json"
    first.write_text(json.dumps(doc), encoding="utf-8")
    assert run("conversations", "import", str(first)).exit_code == 0
    again = run("conversations", "import", str(first))
    assert again.exit_code == 2 and "already imported" in again.stderr
    both = tmp_path / "both.json"
    both.write_text(json.dumps([doc, {**doc, "title": "B"}]), encoding="utf-8")
    result = run.json("conversations", "import", str(both))
    assert [c["title"] for c in result["conversations"]] == ["B"]
    assert result["skipped"] == [{"index": 0, "existing_id": 1}]
    copy = run.json("conversations", "import", "--again", str(first))
    assert len(copy["conversations"]) == 1
    assert len(run.json("conversations", "list")) == 3


def test_export_refuses_an_existing_file_unless_forced_and_dash_is_stdout(run, seed, tmp_path):
    cid = seed("Export", [("hi", "hello")])
    target = tmp_path / "out.json"
    target.write_text("keep me", encoding="utf-8")
    refused = run("conversations", "export", str(cid), "-o", str(target))
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert target.read_text(encoding="utf-8") == "keep me"
    assert run("conversations", "export", str(cid), "-o", str(target), "--force").exit_code == 0
    assert '"Export"' in target.read_text(encoding="utf-8")
    dash = run("conversations", "export", str(cid), "-o", "-")
    assert dash.exit_code == 0 and '"Export"' in dash.stdout
    assert not Path("-").exists()


def test_an_unwritable_log_file_costs_one_line_and_the_crash_line_says_so(
    sqlite_url, recursa_home, monkeypatch
):
    """`logs` being a file: a logged failure adds one warning line (never logging's own
    "--- Logging error ---" block), and a crash line says the traceback could not be saved
    and points to --debug."""
    from recursa.memory.store import Store

    (recursa_home / "data").mkdir(parents=True, exist_ok=True)
    (recursa_home / "data" / "logs").write_text("not a folder")
    failed = run_main(["--db", sqlite_url, "ask", "-m", "no-such-model", "hi"])
    assert failed.code == 1
    warning, error = failed.stderr.strip().splitlines()
    assert warning.startswith("Warning: cannot write the log file") and "not a folder" in warning
    assert error.startswith("Error: Unknown model spec 'no-such-model'")
    assert "Logging error" not in failed.stderr and "Traceback" not in failed.stderr

    def broken(self, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(Store, "list_conversations", broken)
    crash = run_main(["--db", sqlite_url, "conversations", "list"])
    assert crash.code == 1
    (line,) = crash.stderr.strip().splitlines()
    assert line.startswith("Error: unexpected failure (RuntimeError: boom)")
    assert "the traceback could not be saved" in line and "--debug" in line


def test_dataset_export_refuses_an_existing_file_unless_forced_and_dash_is_stdout(
    run, tmp_path, monkeypatch
):
    """Like `conversations export -o`: an existing file is kept unless --force, which
    replaces it whole (no temporary file left beside it); `-o -` is standard output."""
    assert run("ask", "-m", "scripted", "hi").exit_code == 0
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "data.jsonl"
    target.write_text("keep me", encoding="utf-8")
    refused = run("dataset", "export", "--all", "-o", str(target))
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert "Nothing was written" in refused.stderr
    assert target.read_text(encoding="utf-8") == "keep me"
    forced = run("dataset", "export", "--all", "-o", str(target), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert '"messages"' in target.read_text(encoding="utf-8")
    assert sorted(p.name for p in folder.iterdir()) == ["data.jsonl"]
    monkeypatch.chdir(folder)
    dash = run("dataset", "export", "--all", "-o", "-")
    assert dash.exit_code == 0 and '"messages"' in dash.stdout
    assert not (folder / "-").exists()
    missing = run("dataset", "export", "--all", "-o", str(folder / "no" / "x.jsonl"))
    assert missing.exit_code == 2 and "Nothing was written" in missing.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["data.jsonl"]
