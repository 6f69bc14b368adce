"""Recall in the prompt plan: candidates outside the window, fusion, partners, excerpts, layout.

These tests use the scripted model (a queue of replies with a word tokenizer,
named as what it is) over a real SQLite database, with full-text recall only
(`recall.embedder = "none"`); semantic recall with the real MiniLM model is
checked in test_recall_semantic.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from recursa.agent import Agent
from recursa.agent.recall.dates import day_spans, named_days
from recursa.agent.recall.excerpts import sentence_excerpt
from recursa.agent.recall.fusion import fuse
from recursa.agent.recall.query import build_query
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.memory.records import MessageRecord

MakeAgent = Callable[..., Agent]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def filler_document(turns: int, facts: dict[int, str]) -> dict[str, Any]:
    """An imported conversation of `turns` exchanges; `facts[i]` replaces user message i."""
    messages: list[dict[str, Any]] = []
    for i in range(turns):
        when = T0 + timedelta(minutes=2 * i)
        question = facts.get(i, f"Small talk number {i}: how is the weather looking?")
        messages.append({"role": "user", "content": question, "created_at": when.isoformat()})
        messages.append(
            {
                "role": "assistant",
                "content": f"Reply {i}: mild and grey, as usual.",
                "created_at": (when + timedelta(seconds=30)).isoformat(),
            }
        )
    return {"title": "imported", "messages": messages}


def fts_agent(make_agent: MakeAgent, runtime: ScriptedRuntime | None = None, **kw: Any) -> Agent:
    kw.setdefault("max_prompt_tokens", 400)
    return make_agent(runtime or ScriptedRuntime(), recall={"embedder": "none"}, **kw)


def test_imported_conversation_recalls_its_first_turns_with_no_model_call(
    make_agent: MakeAgent,
) -> None:
    """A 300-exchange import recalls a fact from its start at once: no summary, no model call."""
    runtime = ScriptedRuntime()
    agent = fts_agent(make_agent, runtime, max_prompt_tokens=900)
    doc = filler_document(300, {1: "My sister Ada works as a marine biologist in Porto."})
    cid = agent.import_conversation(doc)
    plan = agent.preview_prompt(cid, "Which city does Ada work in?")
    fact = agent.messages(cid, limit=4)[2]
    assert fact.content.startswith("My sister Ada")
    assert fact.id in plan.recalled_ids
    assert fact.id not in plan.window_ids
    assert agent.summaries(cid) == []
    assert runtime.calls == []
    # The reply to the fact comes with it: an answer's question, a question's answer.
    reply = agent.messages(cid, limit=4)[3]
    section = plan.recall_sections[-1]
    sources = {m.id: m.source for m in section.messages}
    assert sources[fact.id] == "full-text"
    assert sources.get(reply.id) == "pair"
    assert plan.total_tokens <= plan.budget


def test_recall_reaches_messages_the_window_leaves_out(make_agent: MakeAgent) -> None:
    """Messages read for the window but left out of it (over budget) are recall candidates."""
    agent = fts_agent(make_agent, max_prompt_tokens=300)
    # 40 exchanges: more than the window holds, fewer than one page of reading.
    doc = filler_document(40, {30: "The spare key hides under the blue flowerpot."})
    cid = agent.import_conversation(doc)
    plan = agent.preview_prompt(cid, "Where is the spare key?")
    fact = next(m for m in agent.messages(cid) if "flowerpot" in m.content)
    assert plan.dropped_ids and fact.id in plan.dropped_ids
    assert fact.id in plan.recalled_ids


def test_pinned_messages_are_kept_before_any_summary(make_agent: MakeAgent) -> None:
    """A pinned message older than the window is in the prompt though nothing was summarized."""
    agent = fts_agent(make_agent)
    cid = agent.import_conversation(filler_document(200, {}))
    first = agent.messages(cid, limit=1)[0]
    agent.pin(first.id)
    plan = agent.preview_prompt(cid, "Anything new?")
    assert first.id in plan.window_ids
    assert agent.summaries(cid) == []


def test_recall_blocks_stay_in_place_so_each_prompt_extends_the_last(
    make_agent: MakeAgent,
) -> None:
    """Between compactions each turn's prompt starts with the previous one (KV prefix reuse)."""
    runtime = ScriptedRuntime(default="Noted.")
    agent = fts_agent(
        make_agent,
        runtime,
        max_prompt_tokens=900,
        summary_share=0.15,
        window_share=0.4,
        recall_share=0.4,
        max_hits=1,
    )
    facts = {
        i: f"Fact {i}: locker {i} holds the {w} umbrella."
        for i, w in enumerate(["red", "green", "blue", "black", "white", "grey", "pink", "gold"])
    }
    cid = agent.import_conversation(filler_document(120, facts))
    # The first turn folds the imported history that does not fit into a summary.
    agent.send(cid, "Hello again.")
    prompts: list[list[Any]] = []
    kept_blocks = 0
    for colour in ["red", "green", "blue"]:
        reply = agent.send(cid, f"Which locker holds the {colour} umbrella?")
        trace = reply.trace
        assert trace is not None
        # Neither a compaction nor a reset of the kept blocks happens in these turns.
        assert trace.compactions == []
        assert not any("recall blocks" in note for note in trace.plan.notes)
        prompts.append(trace.messages)
        kept_blocks = max(
            kept_blocks, sum(1 for s in trace.plan.recall_sections if s.before_message_id)
        )
        assert agent.reconstruct_prompt(reply.message_id) == trace.messages
    assert kept_blocks >= 1
    for before, after in zip(prompts, prompts[1:], strict=False):
        # The previous prompt, the new message included, starts the next one.
        assert after[: len(before)] == before


def test_blocks_left_out_when_the_share_is_full_never_come_back(
    make_agent: MakeAgent,
) -> None:
    """Once the kept blocks are dropped together, the next prompts extend that turn's prompt.

    A kept block is read from the previous turn's plan, so the blocks it left
    out cannot reappear in the middle of a later prompt (which would re-encode
    everything after them).
    """
    runtime = ScriptedRuntime(default="Noted.")
    agent = fts_agent(
        make_agent,
        runtime,
        max_prompt_tokens=900,
        summary_share=0.15,
        window_share=0.45,
        recall_share=0.2,
        max_hits=1,
    )
    colours = ["red", "green", "blue", "black", "white", "grey", "pink", "gold", "teal"]
    facts = {i: f"Fact {i}: locker {i} holds the {w} umbrella." for i, w in enumerate(colours)}
    cid = agent.import_conversation(filler_document(120, facts))
    agent.send(cid, "Hello again.")
    previous: list[Any] | None = None
    resets = extended_after_reset = 0
    for colour in colours:
        trace = agent.send(cid, f"Which locker holds the {colour} umbrella?").trace
        assert trace is not None
        reset = any("recall blocks" in note for note in trace.plan.notes)
        if previous is not None and not reset and not trace.compactions:
            assert trace.messages[: len(previous)] == previous
            extended_after_reset += resets > 0
        resets += reset
        previous = None if trace.compactions else trace.messages
    assert resets >= 1
    assert extended_after_reset >= 2


def test_short_referring_question_borrows_the_previous_exchange() -> None:
    """'Where did she move?' after an exchange about Ada searches for Ada too."""
    previous = [
        record(1, "user", "Let's talk about my sister Ada again."),
        record(2, "assistant", "Sure, what about her?"),
    ]
    query = build_query("Where did she move?", previous)
    assert query.expanded
    assert "ada" in query.terms and "sister" in query.terms
    plain = build_query("Where did my sister Ada move after the wedding?", previous)
    assert not plain.expanded


def test_fusion_ranks_agreement_first_and_names_the_source() -> None:
    """A message found by both rankings outranks the top of either alone."""
    fused = fuse({"full-text": [1, 2, 3], "semantic": [4, 3, 5]})
    assert fused[0][0] == 3 and fused[0][1] == "both"
    sources = {i: s for i, s, _ in fused}
    assert sources[1] == "full-text" and sources[4] == "semantic"
    scores = [score for _, _, score in fused]
    assert scores == sorted(scores, reverse=True)


def test_long_message_is_cut_to_the_sentences_that_matched() -> None:
    """The excerpt keeps the matching sentence, in order, within the token limit."""
    counter = ScriptedRuntime()
    text = " ".join(f"Sentence {i} is about nothing in particular." for i in range(20))
    text += " The boat is called Marigold. " + text
    cut = sentence_excerpt(counter, text, ["boat", "marigold"], 20)
    assert "The boat is called Marigold." in cut
    assert counter.count_text(cut) <= 20
    assert cut != text


def record(seq: int, role: str, content: str) -> MessageRecord:
    return MessageRecord(
        id=seq,
        conversation_id=1,
        seq=seq,
        role=role,  # type: ignore[arg-type]
        content=content,
        status="complete",
        created_at=T0,
    )


def test_dates_in_a_question_are_read_as_whole_days() -> None:
    """'Saturday 23 March', 'March 5th, 2024' and ISO dates become the days they name."""
    assert named_days("What did I tell you on Saturday 23 March?") == [(None, 3, 23)]
    assert named_days("And on March 5th, 2024 or 2024-04-01?") == [(2024, 3, 5), (2024, 4, 1)]
    assert named_days("Nothing here, 45 May is no date") == []
    spans = day_spans([(None, 2, 29)], [2023, 2024])
    assert spans == [(datetime(2024, 2, 29, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))]


def test_a_question_naming_a_date_recalls_what_was_said_that_day(make_agent: MakeAgent) -> None:
    """'What did I say on 3 March?' finds that day's message though it shares no word with it."""
    agent = fts_agent(make_agent)
    doc = filler_document(200, {})
    # Turn 120 happens on another day than the rest.
    doc["messages"][240]["content"] = "We finally signed the lease for the flat in Lyon."
    doc["messages"][240]["created_at"] = "2026-03-03T18:00:00+00:00"
    cid = agent.import_conversation(doc)
    plan = agent.preview_prompt(cid, "What did I tell you on 3 March?")
    lease = next(m for m in agent.messages(cid) if "lease" in m.content)
    assert lease.id in plan.recalled_ids
    sources = {m.id: m.source for s in plan.recall_sections for m in s.messages}
    assert sources[lease.id] == "date"
