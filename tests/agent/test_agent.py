"""The dialogue manager's turn, streams, compaction and conversation API.

These tests use the scripted model (named as what it is: a queue of replies
with a deterministic word tokenizer) over real databases; the same behaviour
with the real SmolLM2 model is checked in test_real_model.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from recursa.agent import Agent, CancelToken, PromptPlan, StreamChunk, TurnFailedError
from recursa.agent.errors import BudgetError, InvalidInputError, NotFoundError
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.summarize import ExtractiveSummarizer, SummarizationError, SummaryResult, Turn

MakeAgent = Callable[..., Agent]


def echo(messages: Sequence[Any]) -> str:
    return "You said: " + messages[-1]["content"]


def small(make_agent: MakeAgent, runtime: ScriptedRuntime | None = None, **kw: Any) -> Agent:
    """An agent with a small budget so that a few turns force compaction."""
    kw.setdefault("max_prompt_tokens", 200)
    kw.setdefault("reply_reserve", 32)
    return make_agent(runtime or ScriptedRuntime(default=echo, context_window=512), **kw)


def test_send_commits_user_message_reply_and_trace(make_agent: MakeAgent) -> None:
    """A turn stores the user message, the reply and its trace; the trace is the exact prompt."""
    runtime = ScriptedRuntime(default=echo)
    agent = make_agent(runtime)
    cid = agent.create_conversation(title="t", system_prompt="Be brief.")
    reply = agent.send(cid, "hello there")
    assert reply.status == "complete" and reply.text == "You said: hello there"
    msgs = agent.messages(cid)
    assert [(m.role, m.content) for m in msgs] == [
        ("user", "hello there"),
        ("assistant", "You said: hello there"),
    ]
    assert reply.user_message_id == msgs[0].id and reply.message_id == msgs[1].id
    trace = agent.trace(reply.message_id)
    assert trace.messages == runtime.calls[0].messages
    assert trace.total_tokens == runtime.count_tokens(trace.messages) <= trace.budget
    assert trace.plan.section("new").message_ids == [msgs[0].id]
    assert agent.reconstruct_prompt(reply.message_id) == trace.messages
    assert runtime.calls[0].cache_key == f"conv-{cid}"


def test_turns_compact_with_hysteresis_and_keep_every_plan_in_budget(
    make_agent: MakeAgent,
) -> None:
    """Compaction runs after replies, not every turn; the summary chain grows; plans fit."""
    agent = small(make_agent, max_prompt_tokens=400)
    cid = agent.create_conversation()
    compacted_after: list[int] = []
    for i in range(24):
        reply = agent.send(cid, f"fact {i}: the code of door {i} is {i * 37}")
        trace = reply.trace
        assert trace is not None
        assert trace.total_tokens <= trace.budget
        assert agent.reconstruct_prompt(reply.message_id) == trace.messages
        if any(c.status == "compacted" for c in trace.compactions):
            compacted_after.append(i)
            assert all(c.when == "after_reply" for c in trace.compactions)
            assert "compaction_after_s" in trace.timings
    chain = agent.summaries(cid)
    assert len(compacted_after) >= 2
    # Hysteresis: not every turn compacts.
    assert len(compacted_after) < 24 // 2
    assert chain[0].depth == len(chain) >= 2
    # Coverage only moves forward and links to its parent.
    for newer, older in zip(chain, chain[1:], strict=False):
        assert newer.parent_id == older.id
        assert newer.covers_from_seq == older.covers_through_seq + 1
    # Raw messages are never deleted.
    assert len(agent.messages(cid)) == 48


def test_stream_yields_text_then_the_reply(make_agent: MakeAgent) -> None:
    """stream() yields text chunks and ends with one chunk carrying the stored Reply."""
    agent = make_agent(ScriptedRuntime(replies=["one two three"]))
    cid = agent.create_conversation()
    chunks = list(agent.stream(cid, "go"))
    assert "".join(c.text for c in chunks if c.event == "text") == "one two three"
    assert chunks[-1].event == "done" and chunks[-1].reply is not None
    assert chunks[-1].reply.text == "one two three"
    assert all(c.reply is None for c in chunks[:-1])


def test_cancel_mid_stream_stores_interrupted_partial_reply_with_trace(
    make_agent: MakeAgent,
) -> None:
    """Cancelling a stream stores what was generated as 'interrupted', with its trace."""
    agent = make_agent(ScriptedRuntime(replies=["a b c d e f g h i j"]))
    cid = agent.create_conversation()
    stream = agent.stream(cid, "go")
    seen = []
    for chunk in stream:
        if chunk.text:
            seen.append(chunk.text)
        if len(seen) == 3:
            stream.cancel()
    assert stream.reply is not None and stream.reply.status == "interrupted"
    assert stream.reply.text == "".join(seen)
    stored = agent.get_message(stream.reply.message_id)
    assert stored.status == "interrupted" and stored.content == "".join(seen)
    assert agent.trace(stored.id).total_tokens > 0
    # The conversation goes on.
    assert agent.send(cid, "again").status == "complete"


def test_closing_a_stream_early_stores_the_partial_reply(make_agent: MakeAgent) -> None:
    """Leaving the loop and closing the stream keeps the partial reply as interrupted."""
    agent = make_agent(ScriptedRuntime(replies=["a b c d e f"]))
    cid = agent.create_conversation()
    with agent.stream(cid, "go") as stream:
        first = next(iter(stream))
        assert first.text == "a"
    last = agent.messages(cid)[-1]
    assert last.role == "assistant" and last.status == "interrupted" and last.content == "a"
    assert agent.trace(last.id).notes


def test_cancel_token_from_another_thread(make_agent: MakeAgent) -> None:
    """A CancelToken passed to send() stops generation from another thread."""
    started = threading.Event()

    def long_reply(messages: Sequence[Any]) -> str:
        started.set()
        return "w " * 200

    runtime = ScriptedRuntime(default=long_reply, chunk_delay_s=0.005)
    agent = make_agent(runtime)
    cid = agent.create_conversation()
    token = CancelToken()

    def cancel_soon() -> None:
        started.wait(30)
        time.sleep(0.1)
        token.cancel()

    threading.Thread(target=cancel_soon, daemon=True).start()
    reply = agent.send(cid, "talk", cancel=token)
    assert reply.status == "interrupted"
    assert len(reply.text) < len("w " * 200)
    assert agent.get_message(reply.message_id).status == "interrupted"


def test_model_error_mid_turn_is_recorded_and_next_turn_works(make_agent: MakeAgent) -> None:
    """A model failure stores the user message and an error reply; the next turn succeeds."""
    runtime = ScriptedRuntime(replies=[RuntimeError("GPU on fire"), "fine now"])
    agent = make_agent(runtime)
    cid = agent.create_conversation()
    with pytest.raises(TurnFailedError, match="GPU on fire") as info:
        agent.send(cid, "first")
    failed = info.value.reply
    assert failed.status == "error" and "GPU on fire" in (failed.error or "")
    msgs = agent.messages(cid)
    assert [(m.role, m.status) for m in msgs] == [("user", "complete"), ("assistant", "error")]
    assert any("generation failed" in n for n in agent.trace(failed.message_id).notes)
    reply = agent.send(cid, "second")
    assert reply.text == "fine now"
    # The failed reply is not shown to the model again; the unanswered message is.
    contents = [m["content"] for m in runtime.calls[-1].messages]
    assert "first" in contents and "…" not in contents


class FailingSummarizer:
    """A summarizer that always fails, like a model returning nothing."""

    name = "failing"

    def fold(
        self, previous: str | None, turns: Sequence[Turn], *, max_tokens: int
    ) -> SummaryResult:
        raise SummarizationError("The summarizer model returned an empty summary.")


def test_summarization_failure_keeps_the_turn_and_says_so(make_agent: MakeAgent) -> None:
    """If summarizing fails, replies still succeed with the plain window, and traces say so."""
    runtime = ScriptedRuntime(default=echo, context_window=512)
    agent = make_agent(runtime, max_prompt_tokens=200, reply_reserve=32)
    agent._summarizer = FailingSummarizer()
    cid = agent.create_conversation()
    notes: list[str] = []
    for i in range(10):
        reply = agent.send(cid, f"message number {i} with some words in it")
        assert reply.status == "complete"
        assert reply.trace is not None and reply.trace.total_tokens <= reply.trace.budget
        notes.extend(reply.trace.notes)
    assert any("compaction failed" in n for n in notes)
    assert agent.summaries(cid) == []


def test_empty_model_output_from_summarizer_is_a_failed_compaction(make_agent: MakeAgent) -> None:
    """With summarizer.method "model", an empty summary is a failure, not a summary."""

    def reply(messages: Sequence[Any]) -> str:
        return " " if "summar" in messages[0]["content"] else "ok"

    agent = small(
        make_agent,
        ScriptedRuntime(default=reply, context_window=512),
        summarizer={"method": "model"},
    )
    cid = agent.create_conversation()
    reports = []
    for i in range(8):
        reports.extend(agent.send(cid, f"turn {i} carries several words here").trace.compactions)
    assert reports and all(r.status == "failed" for r in reports)
    assert "empty summary" in (reports[0].error or "")


def test_compaction_conflict_is_not_applied_twice(make_agent: MakeAgent) -> None:
    """When another agent compacts first, this one keeps the other's summary (no second row)."""
    first = small(make_agent, max_prompt_tokens=400)
    second = small(make_agent, max_prompt_tokens=400)
    cid = first.create_conversation()
    for i in range(3):
        first.send(cid, f"turn {i} with a handful of words")

    class Racing:
        name = "racing"

        def fold(
            self, previous: str | None, turns: Sequence[Turn], *, max_tokens: int
        ) -> SummaryResult:
            second.compact(cid, force=True)  # the other process wins the race
            return SummaryResult("late summary", "summarize/v1", "racing")

    second._summarizer = ExtractiveSummarizer()
    first._summarizer = Racing()
    before = len(first.summaries(cid))
    assert before == 0
    report = first.compact(cid, force=True)
    assert report.status == "conflict"
    chain = first.summaries(cid)
    assert len(chain) == before + 1 and chain[0].content != "late summary"


def test_pinned_message_stays_in_the_prompt_after_compaction(make_agent: MakeAgent) -> None:
    """A pinned message keeps appearing verbatim once it is archived."""
    agent = small(make_agent)
    cid = agent.create_conversation()
    first = agent.send(cid, "remember the password is swordfish")
    agent.pin(first.user_message_id)
    for i in range(8):
        agent.send(cid, f"unrelated chatter number {i} about weather")
    assert agent.summaries(cid), "the pinned message should be archived by now"
    plan = agent.preview_prompt(cid, "anything")
    window = plan.section("window")
    assert window is not None and first.user_message_id in window.message_ids
    assert agent.unpin(first.user_message_id).pinned is False


def test_recall_brings_back_archived_turns_with_dates(make_agent: MakeAgent) -> None:
    """summary+recall shows archived messages relevant to the new one, oldest first, dated."""
    agent = small(make_agent, max_prompt_tokens=300)
    agent._summarizer = ExtractiveSummarizer()
    cid = agent.create_conversation()
    fact = agent.send(cid, "my cat is called Zorblax")
    for i in range(10):
        agent.send(cid, f"filler message {i} about the weather today")
    plan = agent.preview_prompt(cid, "what is my cat called?")
    assert plan.covers_through_seq >= 1
    recall = plan.section("recall")
    assert recall is not None and fact.user_message_id in recall.message_ids
    assert "Zorblax" in (recall.text or "")
    assert plan.messages[-2]["role"] == "system"
    assert plan.messages[-2]["content"].startswith("Excerpts recalled")
    # The plain window policy recalls nothing and shows no summary.
    agent.set_conversation_settings(cid, {"policy": "window"})
    plain = agent.preview_prompt(cid, "what is my cat called?")
    assert plain.section("recall") is None and plain.section("summary") is None


def test_preview_prompt_stores_and_generates_nothing(make_agent: MakeAgent) -> None:
    """preview_prompt returns the plan without writing or calling the model."""
    runtime = ScriptedRuntime()
    agent = make_agent(runtime)
    cid = agent.create_conversation()
    agent.send(cid, "hi")
    n = len(agent.messages(cid))
    plan = agent.preview_prompt(cid, "next question")
    assert isinstance(plan, PromptPlan)
    assert plan.messages[-1] == {"role": "user", "content": "next question"}
    assert plan.section("new").message_ids == []
    assert len(agent.messages(cid)) == n and len(runtime.calls) == 1


@pytest.mark.parametrize("text", ["", "  "])
def test_preview_prompt_of_empty_text_is_the_prompt_as_it_stands(
    make_agent: MakeAgent, text: str
) -> None:
    """An empty composer previews the next prompt with an empty new message; send refuses it."""
    runtime = ScriptedRuntime()
    agent = make_agent(runtime)
    cid = agent.create_conversation(system_prompt="Be brief.")
    agent.send(cid, "hi")
    n = len(agent.messages(cid))
    plan = agent.preview_prompt(cid, text)
    typed = agent.preview_prompt(cid, "next question")
    assert plan.messages[-1] == {"role": "user", "content": text}
    assert plan.messages[:-1] == typed.messages[:-1]
    assert plan.section("window").message_ids == typed.section("window").message_ids
    assert plan.total_tokens == runtime.count_tokens(plan.messages) <= plan.budget
    assert plan.total_tokens < typed.total_tokens
    with pytest.raises(InvalidInputError, match="empty"):
        agent.send(cid, text)
    assert len(agent.messages(cid)) == n and len(runtime.calls) == 1


def test_regenerate_supersedes_the_last_reply(make_agent: MakeAgent) -> None:
    """regenerate answers the last user message again; the old reply leaves the prompt."""
    runtime = ScriptedRuntime(replies=["first answer", "second answer", "third"])
    agent = make_agent(runtime)
    cid = agent.create_conversation()
    agent.send(cid, "question")
    again = agent.regenerate(cid)
    assert again.text == "second answer"
    msgs = agent.messages(cid)
    assert msgs[1].metadata.get("superseded") is True
    assert [m["content"] for m in runtime.calls[1].messages][1:] == ["question"]
    agent.send(cid, "next")
    assert "first answer" not in [m["content"] for m in runtime.calls[2].messages]
    assert "second answer" in [m["content"] for m in runtime.calls[2].messages]


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_rejected_before_anything_is_stored(make_agent: MakeAgent, text: str) -> None:
    """Empty or whitespace-only text raises InvalidInputError and stores nothing."""
    agent = make_agent()
    cid = agent.create_conversation()
    with pytest.raises(InvalidInputError, match="empty"):
        agent.send(cid, text)
    assert agent.messages(cid) == []


def test_message_over_budget_is_rejected_with_sizes_and_nothing_stored(
    make_agent: MakeAgent,
) -> None:
    """A message that cannot fit even alone says how big it is and what the budget is."""
    agent = make_agent(max_prompt_tokens=100)
    cid = agent.create_conversation()
    with pytest.raises(BudgetError, match=r"The message is \d+ tokens.*budget is 100 tokens"):
        agent.send(cid, "word " * 200)
    with pytest.raises(BudgetError):
        agent.preview_prompt(cid, "word " * 200)
    assert agent.messages(cid) == []


def test_unknown_conversation_is_a_not_found_error(make_agent: MakeAgent) -> None:
    """Every entry point names the unknown conversation id."""
    agent = make_agent()
    for call in (
        lambda: agent.send(999, "hi"),
        lambda: agent.preview_prompt(999, "hi"),
        lambda: agent.messages(999),
        lambda: agent.get_conversation(999),
        lambda: agent.compact(999),
    ):
        with pytest.raises(NotFoundError):
            call()
    with pytest.raises(NotFoundError):
        agent.trace(12345)


def test_unknown_setting_is_a_config_error(make_agent: MakeAgent) -> None:
    """Typos in settings are caught with the list of known names."""
    from recursa.agent.errors import ConfigError

    with pytest.raises(ConfigError, match="max_prompt_tokenz"):
        make_agent(max_prompt_tokenz=5)
    agent = make_agent()
    with pytest.raises(ConfigError, match="policy"):
        agent.create_conversation(settings={"policy": "sometimes"})
    assert agent.list_conversations() == []


# --- conversations -----------------------------------------------------------------------


def test_conversation_management_by_delegation(make_agent: MakeAgent) -> None:
    """List, rename, archive, set the system prompt, search and delete."""
    agent = make_agent()
    a = agent.create_conversation(title="alpha")
    b = agent.create_conversation(title="beta")
    agent.send(b, "the zeppelin departs at noon")
    assert [c.id for c in agent.list_conversations()] == [b, a]
    assert agent.rename_conversation(a, "gamma").title == "gamma"
    agent.archive_conversation(a)
    assert [c.id for c in agent.list_conversations()] == [b]
    assert {c.id for c in agent.list_conversations(include_archived=True)} == {a, b}
    assert agent.set_system_prompt(b, "Be kind.").system_prompt == "Be kind."
    assert agent.preview_prompt(b, "x").messages[0]["content"] == "Be kind."
    hits = agent.search("zeppelin")
    assert hits and hits[0].conversation_id == b
    agent.delete_conversation(a)
    with pytest.raises(NotFoundError):
        agent.get_conversation(a)


def test_messages_paging_newest_first(make_agent: MakeAgent) -> None:
    """messages(limit, newest_first, before_seq) pages back from the most recent."""
    agent = make_agent()
    cid = agent.create_conversation()
    for i in range(5):
        agent.send(cid, f"m{i}")
    recent = agent.messages(cid, limit=3, newest_first=True)
    assert [m.seq for m in recent] == [10, 9, 8]
    older = agent.messages(cid, limit=3, newest_first=True, before_seq=recent[-1].seq)
    assert [m.seq for m in older] == [7, 6, 5]


def test_model_is_not_loaded_for_listing_and_inspection(sqlite_url: str) -> None:
    """Opening an agent with a model spec loads nothing until a turn needs it."""
    with Agent.open(sqlite_url, model="scripted") as agent:
        cid = agent.create_conversation(title="x")
        agent.list_conversations()
        agent.messages(cid)
        assert not agent.model_loaded
        progress: list[str] = []
        runtime = agent.load_model(progress=lambda msg, frac: progress.append(msg))
        assert agent.model_loaded and runtime.name
        assert agent.send(cid, "hi").status == "complete"


def test_per_conversation_settings_override_the_agent(make_agent: MakeAgent) -> None:
    """A conversation's own settings (e.g. a smaller budget) apply to its turns only."""
    agent = make_agent(max_prompt_tokens=1000)
    small_id = agent.create_conversation(settings={"max_prompt_tokens": 120})
    big_id = agent.create_conversation()
    assert agent.preview_prompt(small_id, "hi").budget == 120
    assert agent.preview_prompt(big_id, "hi").budget == 1000


# --- async -------------------------------------------------------------------------------


async def test_asend_and_astream_do_not_block_the_loop(make_agent: MakeAgent) -> None:
    """The async twins run the turn off the event loop and give the same results."""
    agent = make_agent(ScriptedRuntime(replies=["x y z", "p q"], chunk_delay_s=0.01))
    cid = agent.create_conversation()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    task = asyncio.create_task(ticker())
    reply = await agent.asend(cid, "one")
    chunks: list[StreamChunk] = [c async for c in await agent.astream(cid, "two")]
    task.cancel()
    assert reply.text == "x y z"
    assert chunks[-1].reply is not None and chunks[-1].reply.text == "p q"
    assert ticks > 3


def test_prompt_prefix_is_stable_between_compactions(make_agent: MakeAgent) -> None:
    """Between compactions, each prompt extends the previous one (KV-cache reuse works)."""
    runtime = ScriptedRuntime(default=echo, context_window=2048)
    agent = make_agent(runtime, max_prompt_tokens=600, reply_reserve=32)
    cid = agent.create_conversation()
    previous = None
    extended = 0
    for i in range(16):
        reply = agent.send(cid, f"tell me about topic {i} and the weather")
        trace = reply.trace
        assert trace is not None
        stable = [m for m in trace.messages[:-1] if not m["content"].startswith("Excerpts")]
        if previous is not None and trace.summary_id == previous[0]:
            assert stable[: len(previous[1])] == previous[1]
            extended += 1
        previous = (
            trace.summary_id,
            [*stable, trace.messages[-1], {"role": "assistant", "content": reply.text}],
        )
    assert extended >= 8


def test_turns_compaction_recall_and_traces_on_both_databases(db_url: str) -> None:
    """The whole turn works the same on SQLite and PostgreSQL."""
    runtime = ScriptedRuntime(default=echo, context_window=512)
    with Agent.open(db_url, runtime, max_prompt_tokens=250, reply_reserve=32) as agent:
        cid = agent.create_conversation(title="both")
        fact = agent.send(cid, "my locker code is 4821")
        for i in range(10):
            agent.send(cid, f"filler number {i} about the weather and trains")
        assert agent.summaries(cid)
        plan = agent.preview_prompt(cid, "what is my locker code?")
        assert plan.total_tokens <= plan.budget
        recall = plan.section("recall")
        assert recall is not None and fact.user_message_id in recall.message_ids
        last = agent.messages(cid)[-1]
        assert agent.reconstruct_prompt(last.id) == agent.trace(last.id).messages
        doc = agent.export_conversation(cid)
        assert agent.export_conversation(agent.import_conversation(doc)) == doc


def test_trace_with_recalled_excerpts_reconstructs_exactly(make_agent: MakeAgent) -> None:
    """A prompt with a recall block (cut excerpts, per-conversation limit) re-renders exactly."""
    agent = small(make_agent, max_prompt_tokens=300)
    agent._summarizer = ExtractiveSummarizer()
    cid = agent.create_conversation(settings={"max_excerpt_tokens": 10})
    agent.send(cid, "my zeppelin is named Hindsight and it is painted " + "very " * 20 + "red")
    for i in range(10):
        agent.send(cid, f"filler message {i} about the weather today")
    reply = agent.send(cid, "what is my zeppelin named?")
    trace = agent.trace(reply.message_id)
    recall = trace.plan.section("recall")
    assert recall is not None and "…" in (recall.text or "")
    assert agent.reconstruct_prompt(reply.message_id) == trace.messages


# The facade is the only door --------------------------------------------------------------


def test_the_store_is_not_part_of_the_public_api(make_agent: MakeAgent) -> None:
    """Surfaces reach the store through methods; the database shows as a password-free URL."""
    agent = make_agent()
    assert not hasattr(agent, "store")
    assert agent.database_url.startswith("sqlite:///")


def test_rate_accepts_replies_good_bad_or_cleared(make_agent: MakeAgent) -> None:
    """One rating rule for every surface: assistant replies only, good/bad/clear as +1/-1/None."""
    agent = make_agent(ScriptedRuntime(replies=["an answer"]))
    cid = agent.create_conversation()
    reply = agent.send(cid, "a question")
    assert agent.rate(reply.message_id, True).rating == 1
    assert agent.rate(reply.message_id, False).rating == -1
    assert agent.rate(reply.message_id, None).rating is None
    with pytest.raises(InvalidInputError, match="only assistant replies"):
        agent.rate(reply.user_message_id, True)
    with pytest.raises(InvalidInputError, match="True \\(good\\), False \\(bad\\) or None"):
        agent.rate(reply.message_id, 5)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        agent.rate(reply.message_id + 999, True)
    assert agent.get_message(reply.message_id).rating is None


def test_export_dataset_keeps_good_replies_and_drops_bad_ones(make_agent: MakeAgent) -> None:
    """Agent.export_dataset gives one example per reply, with the export rules and report."""
    from recursa.agent.training import ExportReport

    agent = make_agent(ScriptedRuntime(replies=["good one", "bad one", "plain one"]))
    cid = agent.create_conversation()
    good, bad, _ = (agent.send(cid, f"q{i}") for i in range(3))
    agent.rate(good.message_id, True)
    agent.rate(bad.message_id, False)
    report = ExportReport()
    examples = agent.export_dataset(conversation_ids=[cid], report=report)
    assert [e["messages"][-1]["content"] for e in examples] == ["good one", "plain one"]
    assert report.skipped_bad == 1
    assert examples[0]["messages"][:-1] == agent.trace(good.message_id).messages
    rated = agent.export_dataset(only_rated=True)
    assert [e["messages"][-1]["content"] for e in rated] == ["good one"]


def test_superseded_replies_are_flagged_on_message_info(make_agent: MakeAgent) -> None:
    """MessageInfo.superseded says which replies a regeneration replaced."""
    agent = make_agent(ScriptedRuntime(replies=["first", "second"]))
    cid = agent.create_conversation()
    agent.send(cid, "question")
    agent.regenerate(cid)
    assert [m.superseded for m in agent.messages(cid)] == [False, True, False]


def test_composition_gives_the_stored_parameters_and_stop_reason(make_agent: MakeAgent) -> None:
    """Agent.composition(id) reads a composition's stored spec; a chat is refused."""
    agent = make_agent(ScriptedRuntime(default="word " * 50), max_prompt_tokens=200)
    result = agent.compose("Once", target_tokens=20, step_tokens=10).run()
    spec = agent.composition(result.composition_id)
    assert spec is not None
    assert spec.target_tokens == 20 and spec.step_tokens == 10
    assert spec.stop_reason == result.stop_reason
    assert [c.id for c in agent.list_conversations(kind="composition")] == [result.composition_id]
    chat = agent.create_conversation()
    assert agent.list_conversations(kind="chat")[0].id == chat
    with pytest.raises(InvalidInputError, match="not a composition"):
        agent.composition(chat)
    with pytest.raises(NotFoundError):
        agent.composition(chat + 999)


def test_failures_of_the_model_are_logged_with_their_context(
    make_agent: MakeAgent, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply that fails and a model that cannot load are logged as errors, naming what failed."""
    from recursa.agent.errors import ModelNotFoundError

    agent = make_agent(ScriptedRuntime(replies=[RuntimeError("the GPU caught fire")]))
    cid = agent.create_conversation()
    with caplog.at_level("ERROR", logger="recursa"), pytest.raises(TurnFailedError):
        agent.send(cid, "hello")
    failed = [r for r in caplog.records if r.name == "recursa.agent.agent"]
    assert len(failed) == 1 and failed[0].levelname == "ERROR"
    assert f"conversation {cid}" in failed[0].message
    assert "RuntimeError: the GPU caught fire" in failed[0].message
    caplog.clear()
    other = Agent.open(sqlite_url, "no-such-model")
    try:
        with caplog.at_level("ERROR", logger="recursa"), pytest.raises(ModelNotFoundError):
            other.load_model()
    finally:
        other.close()
    assert any("'no-such-model'" in r.message for r in caplog.records)
