"""Turn leases: after kill -9 mid-reply the unanswered message is marked at once; a turn
running in another process is not. Real child processes, SQLite then PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.turn_lease import is_live, new_lease
from recursa.agent.turns import UNANSWERED_REPLY

# Streams a slow scripted reply (2,000 words, 10 ms each) and prints STREAMING as it goes.
CHILD = Path(__file__).resolve().parents[1] / "agent" / "child_agent.py"


def _streaming_child(db_url: str, cid: int) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "stream", db_url, str(cid)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RECURSA_RECALL__EMBEDDER": "none"},
    )
    assert child.stdout is not None
    line = child.stdout.readline()  # its user message is stored, its reply under way
    assert line.strip() == "STREAMING", child.stderr.read() if child.stderr else ""
    return child


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_kill_9_mid_reply_marks_the_message_at_once_but_not_a_live_turn(db_url: str) -> None:
    """Two children stream replies in two conversations. A turn sent meanwhile beside the
    live one leaves its message alone; after kill -9 of the other, asking again at once
    (seconds, not minutes, later) marks its message and the trace shows it."""
    with Agent.open(db_url, ScriptedRuntime(default="ok")) as agent:
        live_cid = agent.create_conversation(title="live")
        dead_cid = agent.create_conversation(title="killed")
        agent.send(dead_cid, "before the crash")
    live = _streaming_child(db_url, live_cid)
    dying = _streaming_child(db_url, dead_cid)
    try:
        _kill(dying)
        with Agent.open(db_url, ScriptedRuntime(default="after")) as agent:
            beside = agent.send(live_cid, "meanwhile")
            assert not any("had no reply" in n for n in beside.trace.notes)
            assert [m.role for m in agent.messages(live_cid)] == ["user", "user", "assistant"]

            again = agent.send(dead_cid, "are you there?")
            history = agent.messages(dead_cid)
            assert [(m.role, m.content) for m in history[2:]] == [
                ("user", "tell me a long story"),
                ("assistant", UNANSWERED_REPLY),
                ("user", "are you there?"),
                ("assistant", "after"),
            ]
            assert history[3].status == "interrupted"
            assert history[3].metadata == {"unanswered": True}
            assert any("had no reply" in n for n in again.trace.notes)
            seen = [(m["role"], m["content"]) for m in again.trace.messages[-3:]]
            assert seen == [
                ("user", "tell me a long story"),
                ("assistant", UNANSWERED_REPLY),
                ("user", "are you there?"),
            ]
    finally:
        _kill(live)


def test_a_lease_is_live_only_unexpired_and_held_by_a_running_process() -> None:
    """This process: live; expired: not; a process that ended on this host: not, before its
    expiry; another host: live until its expiry."""
    lease = new_lease()
    assert is_live(lease)
    assert not is_live(None)
    assert not is_live(lease, now=datetime.now(UTC) + timedelta(minutes=1))
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = replace(lease, pid=int(ended.stdout))
    assert gone.pid != os.getpid() and not is_live(gone)
    elsewhere = replace(gone, host="another-machine.example")
    assert is_live(elsewhere)
    assert not is_live(elsewhere, now=lease.expires_at)
