"""A turn interrupted by KeyboardInterrupt or a closed stream keeps its partial reply.

The scripted model (a queue of replies with a word tokenizer) streams one word
per chunk, so "after the first chunk" is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from recursa.agent import Agent, CancelToken
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.summarize import SummaryResult, Turn

MakeAgent = Callable[..., Agent]


class CtrlCOnSecondCheck(CancelToken):
    """A token whose second check raises KeyboardInterrupt inside the model's loop.

    The scripted model checks its token before each chunk, so this is Ctrl-C
    arriving while the model generates the second chunk, deterministically.
    """

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    @property
    def cancelled(self) -> bool:
        self.checks += 1
        if self.checks == 2:
            raise KeyboardInterrupt
        return super().cancelled


def _last_reply(agent: Agent, cid: int) -> tuple[str, str, int]:
    last = agent.messages(cid)[-1]
    assert last.role == "assistant"
    return last.status, last.content, last.id


def test_keyboard_interrupt_while_generating_stores_the_partial_reply(
    make_agent: MakeAgent,
) -> None:
    """Ctrl-C during generation: the partial reply is stored as interrupted, then re-raised."""
    agent = make_agent(ScriptedRuntime(replies=["a b c d e f"]))
    cid = agent.create_conversation()
    seen: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        for chunk in agent.stream(cid, "go", cancel=CtrlCOnSecondCheck()):
            seen.append(chunk.text)
    assert seen == ["a"]
    status, content, message_id = _last_reply(agent, cid)
    assert (status, content) == ("interrupted", "a")
    trace = agent.trace(message_id)
    assert trace.total_tokens > 0
    assert any("KeyboardInterrupt" in note for note in trace.notes)
    assert agent.send(cid, "again").status == "complete"


def test_keyboard_interrupt_in_the_consumer_loop_stores_the_partial_reply(
    make_agent: MakeAgent,
) -> None:
    """Ctrl-C in the caller's loop after the first chunk: leaving the `with` stores it."""
    agent = make_agent(ScriptedRuntime(replies=["a b c d e f"], chunk_delay_s=0.01))
    cid = agent.create_conversation()
    with pytest.raises(KeyboardInterrupt), agent.stream(cid, "go") as stream:
        for chunk in stream:
            if chunk.text:
                raise KeyboardInterrupt
    status, content, message_id = _last_reply(agent, cid)
    assert (status, content) == ("interrupted", "a")
    assert agent.trace(message_id).plan.section("new").message_ids


def test_closing_the_stream_after_the_first_chunk_stores_it_as_interrupted(
    make_agent: MakeAgent,
) -> None:
    """close() (GeneratorExit in the turn) keeps the partial reply as interrupted."""
    agent = make_agent(ScriptedRuntime(replies=["a b c d e f"], chunk_delay_s=0.01))
    cid = agent.create_conversation()
    stream = agent.stream(cid, "go")
    assert next(stream).text == "a"
    stream.close()
    status, content, message_id = _last_reply(agent, cid)
    assert (status, content) == ("interrupted", "a")
    assert agent.trace(message_id).notes


class InterruptedSummarizer:
    """A summarizer interrupted by Ctrl-C mid-summary."""

    name = "interrupted"

    def fold(
        self, previous: str | None, turns: Sequence[Turn], *, max_tokens: int
    ) -> SummaryResult:
        raise KeyboardInterrupt


def test_keyboard_interrupt_during_compaction_after_the_reply_keeps_the_reply(
    make_agent: MakeAgent,
) -> None:
    """Ctrl-C while folding after the reply: the full reply is stored, no summary written."""
    agent = make_agent(
        ScriptedRuntime(default="fine, noted", context_window=512),
        max_prompt_tokens=200,
        reply_reserve=32,
    )
    agent._summarizer = InterruptedSummarizer()
    cid = agent.create_conversation()
    interrupted = False
    for i in range(30):
        try:
            agent.send(cid, f"message {i} with a handful of words to fill the window")
        except KeyboardInterrupt:
            interrupted = True
            break
    assert interrupted, "the window never reached its high-water mark"
    status, content, message_id = _last_reply(agent, cid)
    assert (status, content) == ("complete", "fine, noted")
    assert any("compaction" in note for note in agent.trace(message_id).notes)
    assert agent.summaries(cid) == []
