"""One Agent used from several threads at once, as the TUI uses it.

A turn streams in a worker thread (the scripted model, slowed per chunk) while
other threads read, preview and run a turn in another conversation, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime


def test_reads_previews_and_turns_while_a_turn_streams(db_url: str) -> None:
    """Reads and previews from other threads succeed mid-stream; every turn is stored whole."""
    long_reply = " ".join(f"w{i}" for i in range(60))
    runtime = ScriptedRuntime(default=long_reply, chunk_delay_s=0.02)
    with Agent.open(db_url, runtime) as agent:
        streaming = agent.create_conversation(title="streaming")
        other = agent.create_conversation(title="other")
        agent.send(streaming, "first")
        started = threading.Event()
        chunks: list[str] = []

        def stream_turn() -> str:
            for chunk in agent.stream(streaming, "tell me more"):
                if chunk.text:
                    chunks.append(chunk.text)
                    started.set()
            return "".join(chunks)

        def reader(n: int) -> int:
            started.wait(30)
            calls: list[Callable[[], Any]] = [
                lambda: agent.preview_prompt(streaming, ""),
                lambda: agent.preview_prompt(streaming, f"typing {n}"),
                lambda: agent.messages(streaming, limit=50, newest_first=True),
                lambda: agent.list_conversations(),
                lambda: agent.get_conversation(streaming),
                lambda: agent.traces(streaming),
                lambda: agent.search("first"),
            ]
            done = 0
            for _ in range(5):
                for call in calls:
                    call()
                    done += 1
            return done

        def other_turn() -> str:
            started.wait(30)
            return agent.send(other, "meanwhile").text

        with ThreadPoolExecutor(max_workers=4) as pool:
            turn = pool.submit(stream_turn)
            readers = [pool.submit(reader, n) for n in range(2)]
            side = pool.submit(other_turn)
            assert turn.result(timeout=120) == long_reply
            assert [r.result(timeout=120) for r in readers] == [35, 35]
            assert side.result(timeout=120) == long_reply

        for cid in (streaming, other):
            msgs = agent.messages(cid)
            assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1))
            assert all(m.status == "complete" for m in msgs)
            assert len(agent.traces(cid)) == sum(m.role == "assistant" for m in msgs)
