"""The fact-keeping summarizer: facts picked without a model, dated sections, checked condensing.

The model here is the scripted one (a queue of replies, recorded calls); the
same summarizer with the real SmolLM2 is checked in test_summaries_real.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from recursa.agent import Agent
from recursa.agent import facts as F
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.settings import SummarizerSettings
from recursa.agent.summarize import FactSummarizer, ModelSummarizer, Turn
from recursa.agent.templates import Templates

MakeAgent = Callable[..., Agent]
DAY1 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
DAY2 = datetime(2024, 3, 6, 18, 30, tzinfo=UTC)

FACTS = (
    "By the way, my sister's name is Ada.",
    "The code for my bike lock is 4821.",
    "My uncle moved to Porto last June.",
)
CHAT = (
    "The weather turned grey again this afternoon.",
    "Sounds like a full day. How did that make you feel?",
    "I see.",
)


def test_fact_bearing_sentences_score_above_chit_chat_questions_and_dates() -> None:
    """Names, numbers, relations and decisions score as facts; filler, questions, headings don't."""
    for sentence in (*FACTS, "We decided to sell the old piano.", "I prefer tea to coffee."):
        assert F.fact_score(sentence) >= F.FACT_THRESHOLD, sentence
    for sentence in (*CHAT, "What is the name of my sister?", "Monday 6 May 2024."):
        assert F.fact_score(sentence) < F.FACT_THRESHOLD, sentence
    assert F.tidy("By the way, my sister's name is Ada.") == "My sister's name is Ada."
    assert F.kept("My sister's name is Ada.", "sister: Ada; uncle: Porto")
    assert not F.kept("The code for my bike lock is 4821.", "bike lock code noted")


def test_facts_that_fit_are_kept_verbatim_and_dated_without_a_model_call() -> None:
    """A fold whose facts fit its share calls no model; the section carries the span's dates."""
    runtime = ScriptedRuntime(default="unused")
    turns = [
        Turn("user", f"{CHAT[0]} {FACTS[0]}", DAY1),
        Turn("assistant", CHAT[1], DAY1),
        Turn("user", f"{FACTS[1]} {FACTS[2]}", DAY2),
    ]
    result = FactSummarizer(runtime).fold(None, turns, max_tokens=80)
    assert runtime.calls == [] and result.calls == 0
    assert result.prompt_version == "facts/v2"
    assert result.content == (
        "[2024-03-04 to 2024-03-06] User: My sister's name is Ada. "
        "The code for my bike lock is 4821. My uncle moved to Porto last June."
    )
    # The next fold adds its own dated line and keeps the earlier one.
    later = datetime(2024, 3, 9, tzinfo=UTC)
    nxt = FactSummarizer(runtime).fold(
        result.content, [Turn("user", "My dentist is called Okafor.", later)], max_tokens=200
    )
    assert nxt.content.splitlines() == [
        result.content,
        "[2024-03-09] User: My dentist is called Okafor.",
    ]


def _many_facts(n: int) -> list[Turn]:
    return [
        Turn("user", f"My friend number {i} is called Name{i} and lives in City{i}.", DAY1)
        for i in range(n)
    ]


def test_overflow_is_condensed_by_the_model_only_when_its_answer_keeps_more_facts() -> None:
    """The model condenses what does not fit; a useless answer is refused, a good one kept."""
    turns = _many_facts(12)
    useless = ScriptedRuntime(default="The user talked about friends.")
    result = FactSummarizer(useless).fold(None, turns, max_tokens=120)
    assert len(useless.calls) == 1 and result.prompt_version == "facts/v2"
    assert "kept the verbatim ones" in " ".join(result.notes)
    assert "talked about friends" not in result.content
    assert useless.count_text(result.content) <= 120

    def condense(messages: Sequence[Any]) -> str:
        # A faithful condensation: every listed fact, shorter.
        lines = [ln for ln in messages[-1]["content"].splitlines() if ln.startswith("- ")]
        return "; ".join(
            f"Name{ln.split('Name')[1].split()[0]} in City{ln.split('City')[1][:2]}".replace(
                ".", ""
            )
            for ln in lines
        )

    good = ScriptedRuntime(default=condense)
    kept = FactSummarizer(good).fold(None, turns, max_tokens=120)
    assert len(good.calls) == 1
    assert "model condensation kept" in " ".join(kept.notes)
    assert "Name11" in kept.content and good.count_text(kept.content) <= 120
    # Every request fits the model's context.
    for call in good.calls:
        assert good.count_tokens(call.messages) + call.params.max_new_tokens <= 4096


@pytest.mark.parametrize("failure", [RuntimeError("model crashed"), "   "])
def test_a_failing_or_empty_model_still_gives_a_summary_of_facts(failure: Any) -> None:
    """Model error or empty output: the fold goes on with the facts it picked, and notes why."""
    runtime = ScriptedRuntime(replies=[failure], default="unused")
    result = FactSummarizer(runtime).fold(None, _many_facts(12), max_tokens=120)
    assert "model condensation failed" in " ".join(result.notes)
    assert result.content.count("is called Name") >= 3
    assert runtime.count_text(result.content) <= 120


def test_a_restated_fact_gives_way_before_other_facts() -> None:
    """When room runs out, a value said again later replaces the old one first."""
    runtime = ScriptedRuntime(default="unused")
    previous = "[2024-03-04] User: My postman's name is Jo. My sister's name is Ada."
    turns = [Turn("user", "My postman's name is Robin.", DAY2)]
    # So small a share keeps one dated line: the two spans share it, dated with both.
    expected = (
        "[2024-03-04 to 2024-03-06] User: My sister's name is Ada. My postman's name is Robin."
    )
    # Room for the expected summary, not for one more sentence.
    room = runtime.count_text(expected) + 3
    result = FactSummarizer(runtime, use_model=False).fold(previous, turns, max_tokens=room)
    assert result.content == expected


def test_agent_compaction_folds_dated_facts_and_old_traces_render_as_they_were(
    make_agent: MakeAgent, sqlite_url: str
) -> None:
    """Default settings fold with the fact summarizer; v1 traces still re-render the same."""
    runtime = ScriptedRuntime(default="Noted.", context_window=512)
    old = make_agent(
        runtime, max_prompt_tokens=400, reply_reserve=32, summarizer={"template_version": "v1"}
    )
    cid = old.create_conversation()
    first = old.send(cid, FACTS[0])
    assert first.trace is not None and first.trace.plan.template_version == "v1"
    new = make_agent(
        ScriptedRuntime(default="Noted.", context_window=512),
        max_prompt_tokens=400,
        reply_reserve=32,
    )
    assert new.reconstruct_prompt(first.message_id) == first.trace.messages
    sent = (*FACTS[1:], *CHAT, "My boss prefers meetings on Tuesday.", *CHAT, *CHAT)
    for text in sent:
        new.send(cid, text)
    chain = new.summaries(cid)
    assert chain and chain[0].prompt_version == "facts/v2"
    assert re.match(r"\[\d{4}-\d{2}-\d{2}", chain[0].content) and "4821" in chain[0].content
    # Every message is still stored, the summary only a view of them.
    assert len(new.messages(cid)) == 2 * (1 + len(sent))


def test_every_model_failure_still_leaves_every_turn_and_message(make_agent: MakeAgent) -> None:
    """A model that fails every summary request never blocks a turn nor loses a message."""

    def reply(messages: Sequence[Any]) -> str:
        if "facts" in messages[0]["content"]:
            raise RuntimeError("summarizer down")
        return "ok"

    agent = make_agent(
        ScriptedRuntime(default=reply, context_window=512), max_prompt_tokens=160, reply_reserve=32
    )
    cid = agent.create_conversation()
    notes: list[str] = []
    for i in range(14):
        reply_ = agent.send(cid, f"Note {i}: my friend Name{i} lives in City{i} since 20{i:02d}.")
        assert reply_.status == "complete" and reply_.text == "ok"
        assert reply_.trace is not None
        notes.extend(n for c in reply_.trace.compactions for n in c.notes)
    assert any("model condensation failed" in n and "summarizer down" in n for n in notes)
    assert len(agent.messages(cid)) == 28
    assert agent.summaries(cid), "the facts are folded even though the model failed"


def test_model_method_dates_its_summary_with_the_span_it_covers() -> None:
    """summarizer.method "model" with v2 templates shows the turns' dates and dates the result."""
    runtime = ScriptedRuntime(default="Ada is the sister.")
    s = ModelSummarizer(runtime, SummarizerSettings(method="model"))
    result = s.fold("[2024-03-01] Earlier facts.", [Turn("user", FACTS[0], DAY2)], max_tokens=60)
    assert result.content == "[2024-03-01 to 2024-03-06] Ada is the sister."
    assert "[2024-03-06] user:" in runtime.calls[0].messages[-1]["content"]
    assert "Summary so far:\nEarlier facts." in runtime.calls[0].messages[-1]["content"]


def test_template_versions_keep_v1_text_and_v2_adds_the_summarizer_templates() -> None:
    """v2 renders system and recall exactly like v1; facts and digest exist only in v2."""
    v1, v2 = Templates.load("v1"), Templates.load("v2")
    for name, args in (
        ("system", {"system_prompt": "Be kind.", "summary": "S."}),
        ("recall", {"excerpts": [{"date": "d", "role": "user", "text": "t"}]}),
        ("recall_line", {"date": "d", "role": "user", "text": "t"}),
    ):
        assert v1.render(name, **args) == v2.render(name, **args)
    assert "facts" in v2.tables and "facts" not in v1.tables


def test_a_fold_on_the_same_day_extends_that_days_line_in_order() -> None:
    """Two folds of one day share one dated line; the sentences stay in the order said."""
    runtime = ScriptedRuntime(default="unused")
    first = FactSummarizer(runtime).fold(None, [Turn("user", FACTS[0], DAY1)], max_tokens=200)
    later = DAY1.replace(hour=15)
    second = FactSummarizer(runtime).fold(
        first.content, [Turn("user", f"{FACTS[1]} {FACTS[2]}", later)], max_tokens=200
    )
    assert second.content == (
        "[2024-03-04] User: My sister's name is Ada. The code for my bike lock is 4821. "
        "My uncle moved to Porto last June."
    )


def test_many_folds_in_a_tight_share_merge_dated_lines_instead_of_losing_facts() -> None:
    """Twelve daily folds into 160 tokens: few lines, each dated, the first from day one."""
    runtime = ScriptedRuntime(default="unused")
    summary: str | None = None
    for day in range(12):
        when = datetime(2024, 3, 1 + day, 12, tzinfo=UTC)
        turn = Turn("user", f"My friend Name{day} moved to City{day}.", when)
        summary = (
            FactSummarizer(runtime, use_model=False).fold(summary, [turn], max_tokens=160).content
        )
    assert summary is not None
    lines = summary.splitlines()
    assert 1 <= len(lines) <= 160 // FactSummarizer.TOKENS_PER_SECTION
    assert all(re.match(r"\[2024-03-\d\d( to 2024-03-\d\d)?\] ", line) for line in lines)
    assert lines[-1].startswith("[") and "2024-03-12" in lines[-1]
    assert summary.count("moved to City") >= 6  # headers gave way before most facts did
