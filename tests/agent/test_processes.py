"""Crash safety and concurrent writers: real child processes on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime

CHILD = Path(__file__).with_name("child_agent.py")


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_mid_stream_leaves_a_consistent_database(db_url: str) -> None:
    """A child killed while streaming: user message kept, no half reply, next send works."""
    with Agent.open(db_url, ScriptedRuntime()) as agent:
        cid = agent.create_conversation(title="crash")
        agent.send(cid, "before the crash")
    child = _spawn("stream", db_url, str(cid))
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "STREAMING", child.stderr.read() if child.stderr else ""
    time.sleep(0.2)  # well inside the reply
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    with Agent.open(db_url, ScriptedRuntime(default="after")) as agent:
        msgs = agent.messages(cid)
        assert [m.role for m in msgs[:2]] == ["user", "assistant"]
        assert msgs[2].role == "user" and msgs[2].content == "tell me a long story"
        # The interrupted reply is absent (or, were it stored, marked interrupted).
        assert all(m.status == "interrupted" for m in msgs[3:])
        assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1))
        reply = agent.send(cid, "are you there?")
        assert reply.text == "after" and reply.trace is not None
        assert agent.messages(cid)[-1].id == reply.message_id
        if agent._store.dialect == "sqlite":
            from sqlalchemy import create_engine, text

            engine = create_engine(db_url)
            with engine.connect() as conn:
                assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            engine.dispose()


def test_two_processes_send_to_one_conversation(db_url: str, tmp_path: Path) -> None:
    """Both turns are stored, seqs stay consistent, and the due compaction happens once."""
    history = {
        "messages": [
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": f"old line {i} with a few more words to fill the window",
            }
            for i in range(40)
        ]
    }
    with Agent.open(db_url, ScriptedRuntime()) as agent:
        cid = agent.import_conversation(history)
    go = tmp_path / "go"
    children = [
        _spawn("send", db_url, str(cid), f"hello from child {n}", str(go)) for n in range(2)
    ]
    time.sleep(1.5)  # both children open their stores and wait
    go.touch()
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs.append(out)
    assert all(o.startswith("DONE") for o in outputs), outputs

    with Agent.open(db_url, ScriptedRuntime()) as agent:
        msgs = agent.messages(cid)
        assert [m.seq for m in msgs] == list(range(1, 45))
        users = [m.content for m in msgs[40:] if m.role == "user"]
        assert sorted(users) == ["hello from child 0", "hello from child 1"]
        assert sum(1 for m in msgs[40:] if m.role == "assistant") == 2
        chain = agent.summaries(cid)
        # The history was due for compaction once: one summary, not two over the same span.
        assert len(chain) >= 1
        spans = [(s.covers_from_seq, s.covers_through_seq) for s in chain]
        assert spans == sorted(spans, reverse=True)
        assert all(a[0] > b[1] for a, b in zip(spans, spans[1:], strict=False))
        assert chain[0].depth == len(chain)
        assert chain[-1].covers_from_seq == 1
        parents = [s.parent_id for s in chain]
        assert len(set(parents)) == len(parents)
        # Every compaction a child reports as done is exactly one stored summary; a child
        # that lost the race reports a conflict instead of writing a second one.
        statuses = [s for o in outputs for s in o.split()[2:3] for s in s.split(",") if s]
        assert statuses.count("compacted") == len(chain)
