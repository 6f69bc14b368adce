"""Compaction in the background: the reply is stored first, a turn sent meanwhile does not wait.

The dialogue logic runs on the scripted model (a queue of replies with a word
tokenizer) and a held summarizer (an extractive one that waits for the test's
signal), over a real SQLite store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.summarize import ExtractiveSummarizer, SummaryResult, Turn

MakeAgent = Callable[..., Agent]


def echo(messages: Sequence[Any]) -> str:
    return "You said: " + messages[-1]["content"]


class HeldSummarizer:
    """An extractive summarizer that holds each fold until the test releases it."""

    def __init__(self) -> None:
        self.inner = ExtractiveSummarizer()
        self.started = threading.Event()
        self.release = threading.Event()
        self.folds = 0

    @property
    def name(self) -> str:
        return "held-extractive"

    def fold(
        self, previous: str | None, turns: Sequence[Turn], *, max_tokens: int
    ) -> SummaryResult:
        self.folds += 1
        self.started.set()
        # A safety net so a broken test fails instead of hanging; the test releases it first.
        self.release.wait(timeout=60)
        return self.inner.fold(previous, turns, max_tokens=max_tokens)


def background_agent(make_agent: MakeAgent, summarizer: Any) -> Agent:
    agent = make_agent(
        ScriptedRuntime(default=echo, context_window=512),
        max_prompt_tokens=200,
        reply_reserve=32,
        summarizer={"background": True},
    )
    agent._summarizer = summarizer
    return agent


def send_until_compaction_starts(agent: Agent, cid: int, held: HeldSummarizer) -> int:
    """Send short facts until a background fold has started; return how many were sent."""
    for i in range(40):
        reply = agent.send(cid, f"fact {i}: the code of door {i} is {i * 37}")
        assert reply.trace is not None and not reply.trace.compactions
        # Either the fold started (and is held) or the worker found nothing to do.
        while agent.background_busy(cid) and not held.started.is_set():
            held.started.wait(0.01)
        if held.started.is_set():
            return i + 1
    raise AssertionError("no compaction started in 40 turns")


def test_turn_sent_during_background_compaction_does_not_wait_and_stays_in_budget(
    make_agent: MakeAgent,
) -> None:
    """A turn sent during the fold plans against the old summary, fits, and is stored in order."""
    held = HeldSummarizer()
    agent = background_agent(make_agent, held)
    cid = agent.create_conversation()
    sent = send_until_compaction_starts(agent, cid, held)
    assert agent.background_busy(cid) and agent.summaries(cid) == []

    # A long message: with the old summary (none) the window no longer fits whole.
    long_text = "please remember this long note " + " ".join(f"word{i}" for i in range(60))
    reply = agent.send(cid, long_text)
    # The fold is still held: the turn did not wait for it.
    assert not held.release.is_set() and held.folds == 1
    trace = reply.trace
    assert trace is not None
    assert trace.total_tokens <= trace.budget
    assert trace.summary_id is None and trace.compactions == []
    assert any("compaction is running in the background" in note for note in trace.notes)

    held.release.set()
    assert agent.wait_background(cid, timeout=30)
    report = agent.last_background_compaction(cid)
    assert report is not None and report.status == "compacted" and report.when == "after_reply"
    # Every message is stored, in the order sent, each reply after its question.
    messages = agent.messages(cid)
    assert len(messages) == 2 * (sent + 1)
    assert [m.seq for m in messages] == sorted(m.seq for m in messages)
    assert [m.role for m in messages] == ["user", "assistant"] * (sent + 1)
    assert messages[-2].content == long_text
    # The next turn plans with the summary made meanwhile.
    chain = agent.summaries(cid)
    assert chain and chain[0].covers_through_seq < messages[-2].seq
    after = agent.send(cid, "and now?")
    assert after.trace is not None and after.trace.summary_id == chain[0].id
    assert after.trace.total_tokens <= after.trace.budget


def test_background_compaction_keeps_the_summary_chain_and_never_a_second_fold(
    make_agent: MakeAgent,
) -> None:
    """Many turns with background folds: coverage only moves forward, no summary twice."""
    agent = background_agent(make_agent, ExtractiveSummarizer())
    cid = agent.create_conversation()
    for i in range(24):
        reply = agent.send(cid, f"fact {i}: the code of door {i} is {i * 37}")
        assert reply.trace is not None and reply.trace.total_tokens <= reply.trace.budget
        if i % 3 == 0:
            agent.wait_background(cid, timeout=30)
    assert agent.wait_background(timeout=30)
    chain = agent.summaries(cid)
    assert len(chain) >= 2
    for newer, older in zip(chain, chain[1:], strict=False):
        assert newer.parent_id == older.id
        assert newer.covers_from_seq == older.covers_through_seq + 1
    assert len(agent.messages(cid)) == 48


def test_closing_the_agent_during_a_background_fold_loses_nothing(make_agent: MakeAgent) -> None:
    """close() during a fold returns once it ends; every message is kept."""
    held = HeldSummarizer()
    agent = background_agent(make_agent, held)
    cid = agent.create_conversation()
    sent = send_until_compaction_starts(agent, cid, held)
    closer = threading.Thread(target=agent.close)
    closer.start()
    held.release.set()
    closer.join(timeout=30)
    assert not closer.is_alive()
    reopened = make_agent(ScriptedRuntime(default=echo, context_window=512))
    assert len(reopened.messages(cid)) == 2 * sent
