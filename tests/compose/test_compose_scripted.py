"""Composition logic with a scripted model: stop conditions, storage, resume, bad input.

The scripted model (a test double named as such) answers from a queue or a
function and records every call, so these tests see exactly what each step's
prompt and generation parameters were. The real model is exercised in
test_compose_model.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from recursa.agent import Agent, CancelToken
from recursa.agent.compose import (
    CompositionChunk,
    CompositionResult,
    CompositionStream,
    compose,
    composition_text,
    resume_composition,
)
from recursa.agent.errors import BudgetError, InvalidInputError, NotFoundError
from recursa.agent.runtime.protocol import ChatMessage
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.summarize import ExtractiveSummarizer

BUDGET = 256


def numbered(prefix: str = "w", size: int = 40) -> Callable[[Sequence[ChatMessage]], str]:
    """A reply function whose every reply is new text (no loops), `size` words long."""
    counter = itertools.count()

    def reply(_messages: Sequence[ChatMessage]) -> str:
        i = next(counter)
        return " ".join(f"{prefix}{i}x{j}" for j in range(size)) + "."

    return reply


def drain(stream: CompositionStream) -> tuple[str, list[CompositionChunk], CompositionResult]:
    chunks = list(stream)
    assert stream.result is not None and chunks[-1].result is stream.result
    text = "".join(c.text for c in chunks if c.event == "text")
    return text, chunks, stream.result


def stored_steps(agent: Agent, cid: int) -> list[Any]:
    return [m for m in agent.messages(cid) if m.role == "assistant"]


def test_target_reached_within_budget_with_compaction(make_agent: Callable[..., Agent]) -> None:
    """A composition several times the budget stops at its target; every prompt fits."""
    runtime = ScriptedRuntime(default=numbered())
    agent = make_agent(runtime, max_prompt_tokens=BUDGET)
    stream = compose(agent, "Today the weather", target_tokens=4 * BUDGET, step_tokens=32)
    text, chunks, result = drain(stream)

    assert result.stop_reason == "target"
    assert result.tokens == 4 * BUDGET
    steps = stored_steps(agent, result.composition_id)
    assert "".join(m.content for m in steps) == text == result.text
    assert composition_text(agent, result.composition_id) == "Today the weather" + text
    assert [m.metadata["composition_step"] for m in steps] == list(range(1, len(steps) + 1))
    assert sum(m.metadata["tokens"] for m in steps) == 4 * BUDGET
    traces = agent.traces(result.composition_id)
    assert len(traces) == len(steps)
    for trace in traces:
        assert trace.budget == BUDGET
        assert runtime.count_tokens(trace.messages) == trace.total_tokens <= BUDGET
        assert trace.messages[-1]["role"] == "user"  # the continuation cue
        assert trace.params["max_new_tokens"] <= 32
    assert result.compactions >= 1
    assert any(c.event == "compacting" for c in chunks)
    chain = agent.summaries(result.composition_id)
    assert len(chain) == result.compactions
    assert chain[0].prompt_version == "summarize/compose_v1"
    # Later steps see the summary in their system message and only a tail verbatim.
    last = traces[-1]
    assert last.summary_id == chain[0].id
    assert chain[0].content in last.messages[0]["content"]
    assert set(last.window_ids) < {m.id for m in steps}


def test_composition_is_a_stored_conversation(make_agent: Callable[..., Agent]) -> None:
    """It can be listed by kind, searched, exported, and its steps' prompts inspected."""
    agent = make_agent(ScriptedRuntime(default=numbered("zeb")), max_prompt_tokens=BUDGET)
    result = compose(agent, "A harbour at dawn", target_tokens=60, step_tokens=30).run()
    cid = result.composition_id
    listed = agent.list_conversations(kind="composition")
    assert [c.id for c in listed] == [cid]
    assert agent.get_conversation(cid).kind == "composition"
    assert agent.get_conversation(cid).title == "A harbour at dawn"
    hits = agent.search("zeb0x3", conversation_id=cid)
    assert hits and hits[0].role == "assistant"
    exported = agent.export_conversation(cid)
    assert [m["role"] for m in exported["messages"]][:2] == ["system", "user"]
    step = stored_steps(agent, cid)[0]
    assert agent.trace(step.id).messages == agent.reconstruct_prompt(step.id)


def test_stop_string_ends_the_composition(make_agent: Callable[..., Agent]) -> None:
    """A stop string ends the text before it, with stop reason "stop_string"."""
    runtime = ScriptedRuntime(
        replies=[
            "The storm came early and the boats stayed in.",
            "By night the rain stopped. END and more words after it.",
        ],
        default=numbered(),
    )
    agent = make_agent(runtime, max_prompt_tokens=BUDGET)
    text, _, result = drain(compose(agent, "Once", target_tokens=500, step_tokens=40, stop="END"))
    assert result.stop_reason == "stop_string"
    assert "END" not in text and text.endswith("By night the rain stopped. ")
    assert "".join(m.content for m in stored_steps(agent, result.composition_id)) == text
    assert runtime.calls[-1].params.stop == ("END",)


def test_end_of_text_stops_when_the_model_has_nothing_to_add(
    make_agent: Callable[..., Agent],
) -> None:
    """A step that ends at the model's end of text without writing anything stops: "eos".

    A step that ends at end-of-turn after writing text only ends that step; the
    next one starts a new paragraph.
    """
    runtime = ScriptedRuntime(replies=["First part.", "Second part.", ""])
    agent = make_agent(runtime, max_prompt_tokens=BUDGET)
    text, _, result = drain(compose(agent, "Intro.", target_tokens=500, step_tokens=40))
    assert result.stop_reason == "eos"
    assert text == " First part.\n\nSecond part."
    assert len(stored_steps(agent, result.composition_id)) == 3


def test_repetition_escalates_controls_then_stops(make_agent: Callable[..., Agent]) -> None:
    """A model that repeats itself gets a penalty and n-gram blocking, then stops: "repetition"."""
    loop = "The sun is shining and the birds are singing in the old green trees."
    runtime = ScriptedRuntime(default=loop)
    agent = make_agent(runtime, max_prompt_tokens=BUDGET, repetition_penalty=1.0)
    text, chunks, result = drain(compose(agent, "Morning.", target_tokens=2000, step_tokens=40))

    assert result.stop_reason == "repetition"
    params = [c.params for c in runtime.calls if c.cache_key and "composition" in c.cache_key]
    assert params[0].repetition_penalty == 1.0 and params[0].no_repeat_ngram_size == 0
    assert params[1].repetition_penalty == 1.0  # the first step was not a repeat
    assert params[2].repetition_penalty > 1.0 and params[2].no_repeat_ngram_size > 0
    assert params[3].repetition_penalty > params[2].repetition_penalty
    assert len(params) == 4  # stopped instead of writing pages of the same sentence
    steps = [c.step for c in chunks if c.step is not None]
    assert [s.control_level for s in steps] == [0, 1, 2, 2]
    last = agent.trace(steps[-1].message_id)
    assert any("repetition" in note for note in last.notes)
    assert "".join(s.text for s in steps) == text


def test_repetition_control_can_be_turned_off(make_agent: Callable[..., Agent]) -> None:
    runtime = ScriptedRuntime(default="Again and again the same words come back here.")
    agent = make_agent(runtime, max_prompt_tokens=BUDGET, repetition_penalty=1.0)
    result = compose(agent, "Go.", target_tokens=80, step_tokens=40, repetition=False).run()
    assert result.stop_reason == "target"
    assert all(c.params.no_repeat_ngram_size == 0 for c in runtime.calls)


def test_cancel_stores_the_partial_step_and_resume_continues(
    make_agent: Callable[..., Agent],
) -> None:
    """A cancel mid-step keeps what was emitted (as interrupted); resume goes on from it."""
    runtime = ScriptedRuntime(default=numbered())
    agent = make_agent(runtime, max_prompt_tokens=BUDGET)
    cancel = CancelToken()
    stream = compose(agent, "Start.", target_tokens=120, step_tokens=30, cancel=cancel)
    emitted: list[str] = []
    steps_seen = 0
    for chunk in stream:
        if chunk.event == "text":
            emitted.append(chunk.text)
            if steps_seen == 1 and len(emitted) > 30 + 5:
                cancel.cancel()
        elif chunk.event == "step":
            steps_seen += 1
    assert stream.result is not None and stream.result.stop_reason == "cancelled"
    cid = stream.composition_id
    steps = stored_steps(agent, cid)
    assert steps[-1].status == "interrupted"
    assert "".join(m.content for m in steps) == "".join(emitted)

    text, _, result = drain(resume_composition(agent, cid))
    assert result.stop_reason == "target" and result.tokens == 120
    all_steps = stored_steps(agent, cid)
    assert "".join(m.content for m in all_steps) == "".join(emitted) + text == result.text
    assert [m.metadata["composition_step"] for m in all_steps] == list(range(1, len(all_steps) + 1))


def test_resume_after_the_reader_stops_neither_loses_nor_duplicates(
    make_agent: Callable[..., Agent],
    sqlite_url: str,
) -> None:
    """Stopping between steps and resuming from a new agent continues after the last step."""
    agent = make_agent(ScriptedRuntime(default=numbered("a")), max_prompt_tokens=BUDGET)
    stream = compose(agent, "Start.", target_tokens=150, step_tokens=30)
    emitted = []
    for chunk in stream:
        if chunk.event == "text":
            emitted.append(chunk.text)
        if chunk.event == "step" and chunk.step is not None and chunk.step.index == 2:
            break
    stream.close()
    cid = stream.composition_id
    assert len(stored_steps(agent, cid)) == 2
    assert (
        agent.get_message(agent.messages(cid)[0].id).metadata["composition"]["stop_reason"] is None
    )

    other = make_agent(ScriptedRuntime(default=numbered("b")), max_prompt_tokens=BUDGET)
    resumed = resume_composition(other, cid)
    text, chunks, result = drain(resumed)
    first_new = next(c.step for c in chunks if c.step is not None)
    assert first_new.index == 3
    steps = stored_steps(other, cid)
    assert "".join(m.content for m in steps) == "".join(emitted) + text
    assert result.steps == len(steps) and result.new_steps == len(steps) - 2
    assert result.tokens == 150


def test_resume_of_a_finished_composition_only_reports(make_agent: Callable[..., Agent]) -> None:
    """A finished composition resumes to its final chunk; a raised target writes more."""
    runtime = ScriptedRuntime(default=numbered())
    agent = make_agent(runtime, max_prompt_tokens=BUDGET)
    done = compose(agent, "Start.", target_tokens=40, step_tokens=20).run()
    calls = len(runtime.calls)
    again = resume_composition(agent, done.composition_id).run()
    assert again.stop_reason == "target" and again.new_steps == 0 and len(runtime.calls) == calls
    more = resume_composition(agent, done.composition_id, target_tokens=80).run()
    assert more.stop_reason == "target" and more.tokens == 80 and more.new_steps == 2


def test_preset_gives_opening_instructions_and_sampler(make_agent: Callable[..., Agent]) -> None:
    runtime = ScriptedRuntime(default=numbered())
    agent = make_agent(runtime, max_prompt_tokens=BUDGET)
    result = compose(agent, target_tokens=20, step_tokens=20, preset="weather").run()
    assert result.opening == "Today the weather"
    call = runtime.calls[0]
    assert call.params.temperature == 0.7
    assert call.messages[0]["content"].startswith("You are a writer. You continue a light")
    assert call.messages[1] == {"role": "user", "content": "Today the weather"}
    # The user's own text replaces the preset's opening; explicit instructions win.
    other = compose(
        agent,
        "Rain again",
        target_tokens=20,
        step_tokens=20,
        preset="weather",
        instructions="Write about rain.",
    ).run()
    assert other.opening == "Rain again"
    assert runtime.calls[-1].messages[0]["content"] == "Write about rain."


def test_empty_start_begins_the_text(make_agent: Callable[..., Agent]) -> None:
    """With no opening and no preset, the first step is asked to begin the text."""
    runtime = ScriptedRuntime(default=numbered())
    agent = make_agent(runtime, max_prompt_tokens=BUDGET)
    result = compose(agent, target_tokens=50, step_tokens=25).run()
    first, second = runtime.calls[0].messages, runtime.calls[1].messages
    assert [m["role"] for m in first] == ["system", "user"]
    assert first[-1]["content"].startswith("Begin the text")
    assert second[-1]["content"].startswith("Continue the text")
    assert result.opening == "" and not result.text.startswith(" ")
    roles = [m.role for m in agent.messages(result.composition_id)]
    assert roles == ["system", "assistant", "assistant"]


def test_window_policy_truncates_without_summaries(make_agent: Callable[..., Agent]) -> None:
    """With the plain-window policy old steps fall out of the prompt; nothing is summarized."""
    runtime = ScriptedRuntime(default=numbered())
    agent = make_agent(runtime, max_prompt_tokens=BUDGET, policy="window")
    result = compose(agent, "Start.", target_tokens=3 * BUDGET, step_tokens=32).run()
    assert result.stop_reason == "target" and result.compactions == 0
    assert agent.summaries(result.composition_id) == []
    for trace in agent.traces(result.composition_id):
        assert trace.total_tokens <= BUDGET and trace.summary_id is None


def test_injected_summarizer_is_used(make_agent: Callable[..., Agent]) -> None:
    runtime = ScriptedRuntime(default=numbered())
    agent = make_agent(runtime, max_prompt_tokens=BUDGET)
    result = compose(
        agent,
        "Start.",
        target_tokens=3 * BUDGET,
        step_tokens=32,
        summarizer=ExtractiveSummarizer(runtime.count_text),
    ).run()
    chain = agent.summaries(result.composition_id)
    assert chain and all(s.model == "extractive" for s in chain)
    assert all(c.cache_key and c.cache_key.startswith("composition") for c in runtime.calls)


@pytest.mark.parametrize("target", [0, -5, 1.5, True, "10"])
def test_bad_targets_are_refused_before_anything_is_stored(
    make_agent: Callable[..., Agent],
    target: object,
) -> None:
    agent = make_agent(max_prompt_tokens=BUDGET)
    with pytest.raises(InvalidInputError, match="target_tokens"):
        compose(agent, "Start.", target_tokens=target)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="step_tokens"):
        compose(agent, "Start.", target_tokens=10, step_tokens=0)
    assert agent.list_conversations(kind="composition") == []


def test_step_larger_than_the_budget_is_a_budget_error(make_agent: Callable[..., Agent]) -> None:
    agent = make_agent(max_prompt_tokens=BUDGET)
    with pytest.raises(BudgetError, match="larger than the prompt budget of 256"):
        compose(agent, "Start.", target_tokens=1000, step_tokens=BUDGET + 1)
    # Smaller than the budget but too large to stay in the tail beside the summary.
    with pytest.raises(BudgetError, match="Use a step of at most"):
        compose(agent, "Start.", target_tokens=1000, step_tokens=BUDGET - 20)
    with pytest.raises(BudgetError, match="opening text"):
        compose(agent, "word " * 400, target_tokens=100, step_tokens=16)
    assert agent.list_conversations(kind="composition") == []


def test_unknown_preset_and_other_bad_input(make_agent: Callable[..., Agent]) -> None:
    agent = make_agent(max_prompt_tokens=BUDGET)
    with pytest.raises(InvalidInputError, match="Unknown preset 'novel'. Known presets: .*story"):
        compose(agent, target_tokens=10, preset="novel")
    with pytest.raises(InvalidInputError, match="Stop strings"):
        compose(agent, "x", target_tokens=10, stop=[""])
    with pytest.raises(InvalidInputError, match="instructions are empty"):
        compose(agent, "x", target_tokens=10, instructions="  ")
    with pytest.raises(InvalidInputError, match="NUL"):
        compose(agent, "bad\x00text", target_tokens=10)
    assert agent.list_conversations(kind="composition") == []


def test_resume_refuses_chats_and_unknown_ids(make_agent: Callable[..., Agent]) -> None:
    agent = make_agent(max_prompt_tokens=BUDGET)
    chat = agent.create_conversation("a chat")
    with pytest.raises(InvalidInputError, match="not a composition"):
        resume_composition(agent, chat)
    with pytest.raises(NotFoundError):
        resume_composition(agent, 9999)


def test_composition_on_both_databases(db_url: str, make_agent: Callable[..., Agent]) -> None:
    """The same composition, interrupted and resumed, on SQLite and on PostgreSQL."""
    agent = make_agent(ScriptedRuntime(default=numbered()), db_url=db_url, max_prompt_tokens=BUDGET)
    stream = compose(agent, "Start.", target_tokens=3 * BUDGET, step_tokens=32)
    emitted = []
    for chunk in stream:
        if chunk.event == "text":
            emitted.append(chunk.text)
        if chunk.step is not None and chunk.step.index == 5:
            break
    stream.close()
    text, _, result = drain(resume_composition(agent, stream.composition_id))
    assert result.stop_reason == "target" and result.compactions >= 1
    assert composition_text(agent, result.composition_id) == "Start." + "".join(emitted) + text
