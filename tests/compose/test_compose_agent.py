"""`Agent.compose` and `Agent.resume_composition`: the library entry points of composition.

The scripted model (a test double named as such) writes numbered words so that
every step is new text; the module functions behind these methods are tested
in depth in test_compose_scripted.py and with the real model in test_compose_model.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from recursa.agent import Agent, CancelToken, CompositionChunk, CompositionStream
from recursa.agent.runtime.protocol import ChatMessage
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.summarize import ExtractiveSummarizer

BUDGET = 256


def numbered(size: int = 30) -> Callable[[Sequence[ChatMessage]], str]:
    counter = itertools.count()

    def reply(_messages: Sequence[ChatMessage]) -> str:
        i = next(counter)
        return " ".join(f"w{i}x{j}" for j in range(size)) + "."

    return reply


def test_agent_compose_stores_every_step_and_resume_continues_after_a_cancel(
    sqlite_url: str,
) -> None:
    """A cancelled Agent.compose resumes from its last stored step up to the target."""
    runtime = ScriptedRuntime(default=numbered())
    with Agent.open(
        sqlite_url, runtime, max_prompt_tokens=BUDGET, summarizer=ExtractiveSummarizer()
    ) as agent:
        cancel = CancelToken()
        stream = agent.compose(
            "Today the weather", target_tokens=3 * BUDGET, step_tokens=32, cancel=cancel
        )
        assert isinstance(stream, CompositionStream)
        first: list[CompositionChunk] = []
        for chunk in stream:
            first.append(chunk)
            if chunk.event == "step":
                cancel.cancel()
        assert stream.result is not None
        assert stream.result.stop_reason == "cancelled"
        cid = stream.result.composition_id
        assert agent.get_conversation(cid).kind == "composition"

        resumed = agent.resume_composition(cid)
        rest = list(resumed)
        assert resumed.result is not None
        assert resumed.result.stop_reason == "target"
        assert resumed.result.tokens == 3 * BUDGET

        emitted = "".join(c.text for c in first + rest if c.event == "text")
        steps = [m for m in agent.messages(cid) if m.role == "assistant"]
        assert "".join(m.content for m in steps) == emitted
        assert [m.metadata["composition_step"] for m in steps] == list(range(1, len(steps) + 1))
        for trace in agent.traces(cid):
            assert runtime.count_tokens(trace.messages) == trace.total_tokens <= BUDGET
