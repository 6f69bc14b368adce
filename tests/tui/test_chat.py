"""Pilot tests of the chat view: streaming, stopping, regenerating, message actions, budget."""

from __future__ import annotations

import asyncio

from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.tui.widgets.budget import budget_figures
from recursa.tui.widgets.inspector import ChainLink, SectionView
from tui_helpers import document, press_nowait, ready, settle, wait_until

LONG_REPLY = " ".join(f"word{i}" for i in range(200))


def long_turns(count: int, question: int, answer: int) -> list[tuple[str, str]]:
    """`count` exchanges of wordy questions and answers (sizes in repeated phrases)."""
    turns = []
    for i in range(count):
        turns += [
            ("user", f"Question {i} " + "about many things " * question),
            ("assistant", f"Answer {i} " + "with a lot of words " * answer),
        ]
    return turns


async def test_sent_message_streams_a_reply_that_is_stored(make_app, tui_db):
    """Enter sends; the reply appears piece by piece, then both messages are in the database."""
    runtime = ScriptedRuntime(replies=["Hello **there**, how are you today?"], chunk_delay_s=0.02)
    app = make_app(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press(*"hi there")
        await press_nowait(pilot, "enter")
        seen: list[str] = []

        def partial() -> bool:
            views = screen.chat.message_views
            if len(views) == 2 and views[1].data.id is None and views[1].text:
                seen.append(views[1].text)
            return False

        # Sample the reply while it streams: it must be shown before it is complete.
        for _ in range(200):
            partial()
            if len(seen) >= 2:
                break
            await asyncio.sleep(0.01)
        await settle(pilot)
        views = screen.chat.message_views
        assert [v.data.role for v in views] == ["user", "assistant"]
        assert seen and seen[0] != "Hello **there**, how are you today?"
        stored = app.agent.messages(screen.conversation.id)
        assert [(m.role, m.content, m.status) for m in stored] == [
            ("user", "hi there", "complete"),
            ("assistant", "Hello **there**, how are you today?", "complete"),
        ]
        assert views[1].data.id == stored[1].id
        assert screen.conversation.title == "hi there"  # the first message names it


async def test_escape_stops_a_reply_and_keeps_the_partial_text(make_app):
    """Esc mid-reply stops generation; the partial reply is stored as interrupted and marked."""
    runtime = ScriptedRuntime(replies=[LONG_REPLY], chunk_delay_s=0.03)
    app = make_app(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press(*"tell me everything")
        await press_nowait(pilot, "enter")
        for _ in range(500):
            views = screen.chat.message_views
            if len(views) == 2 and len(views[1].text) > 20:
                break
            await asyncio.sleep(0.01)
        await press_nowait(pilot, "escape")
        await settle(pilot)
        stored = app.agent.messages(screen.conversation.id)
        reply = stored[-1]
        assert reply.role == "assistant" and reply.status == "interrupted"
        assert reply.content and LONG_REPLY.startswith(reply.content)
        assert len(reply.content) < len(LONG_REPLY)
        view = screen.chat.message_views[-1]
        assert view.data.status == "interrupted" and view.text == reply.content
        assert "stopped" in str(view._header.render())


async def test_ctrl_j_inserts_a_line_break_and_enter_sends_both_lines(make_app):
    """The documented newline key makes a multi-line message; Enter sends it whole."""
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press(*"line one", "ctrl+j", *"line two")
        assert screen.composer.text == "line one\nline two"
        await pilot.press("enter")
        await settle(pilot)
        assert app.agent.messages(screen.conversation.id)[0].content == "line one\nline two"
        assert screen.composer.text == ""


async def test_regenerate_answers_again_and_marks_the_old_reply(make_app):
    """Ctrl+R replaces the last reply; the earlier one is kept, marked superseded."""
    runtime = ScriptedRuntime(replies=["first answer", "second answer"])
    app = make_app(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press(*"question", "enter")
        await settle(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        stored = app.agent.messages(screen.conversation.id)
        assert [m.content for m in stored] == ["question", "first answer", "second answer"]
        assert stored[1].metadata.get("superseded") is True
        views = screen.chat.message_views
        assert [v.text for v in views] == ["question", "first answer", "second answer"]
        assert views[1].data.superseded


async def test_pin_copy_and_rate_the_selected_message(make_app, seed: Agent):
    """p pins (and unpins), y copies to the clipboard, + and - rate the selected reply."""
    cid = seed.import_conversation(
        document(
            "Facts",
            [
                ("user", "My sister is Ada."),
                ("assistant", "Noted: your sister is Ada."),
                ("user", "Thanks"),
                ("assistant", "You're welcome."),
            ],
        )
    )
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press("ctrl+up")  # focus the messages: the last one is selected
        await pilot.press("up", "up", "up")
        assert screen.chat.selected.text == "My sister is Ada."
        await pilot.press("p")
        await settle(pilot)
        first = app.agent.messages(cid)[0]
        assert first.pinned and screen.chat.selected.data.pinned
        await pilot.press("y")
        assert app.clipboard == "My sister is Ada."
        await pilot.press("down")
        await pilot.press("plus")
        await settle(pilot)
        assert app.agent.messages(cid)[1].rating == 1
        await pilot.press("minus")
        await settle(pilot)
        assert app.agent.messages(cid)[1].rating == -1
        await pilot.press("up", "p")
        await settle(pilot)
        assert not app.agent.messages(cid)[0].pinned


async def test_inspector_shows_the_stored_trace_section_by_section(make_app, seed: Agent):
    """The inspector's sections and token counts are the reply's stored trace's."""
    seed.import_conversation(
        document(
            "Earlier",
            [
                ("user", "What is recursion?"),
                ("assistant", "A function calling itself."),
            ],
        )
    )
    app = make_app(ScriptedRuntime(replies=["It is **recursion** again."]))
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await ready(pilot)
        await pilot.press(*"and again?", "enter")
        await settle(pilot)
        await pilot.press("ctrl+up")  # selects the newest reply
        await pilot.press("f3")
        await settle(pilot)
        reply_id = screen.chat.message_views[-1].data.id
        trace = app.agent.trace(reply_id)
        shown = [(s.kind, s.tokens) for s in screen.inspector.query(SectionView)]
        assert shown == [(s.kind, s.tokens) for s in trace.plan.sections]
        assert sum(tokens for _, tokens in shown) == trace.total_tokens
        assert screen.inspector.plan == trace.plan
        assert screen.inspector.subject == f"Reply #{screen.chat.message_views[-1].data.seq}"


async def test_inspector_previews_the_next_prompt_for_the_composer(make_app, seed: Agent):
    """With the composer focused, the inspector shows preview_prompt for the typed text."""
    cid = seed.import_conversation(
        document(
            "Earlier",
            [
                ("user", "What is recursion?"),
                ("assistant", "A function calling itself."),
            ],
        )
    )
    app = make_app()
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await ready(pilot)
        await pilot.press("f3", *"what about loops?")
        await settle(
            pilot,
            lambda: (
                screen.inspector.plan is not None
                and screen.inspector.plan.section("new").messages[0].content == "what about loops?"
            ),
        )
        expected = app.agent.preview_prompt(cid, "what about loops?")
        shown = [(s.kind, s.tokens) for s in screen.inspector.query(SectionView)]
        assert shown == [(s.kind, s.tokens) for s in expected.sections]
        assert screen.inspector.subject == "Next prompt (preview)"


async def test_budget_bar_numbers_are_preview_prompt_numbers(make_app, seed: Agent):
    """As the user types, the bar shows preview_prompt's per-section tokens and free tokens."""
    cid = seed.import_conversation(
        document(
            "Budget",
            [
                ("user", "Hello there, this is a longer first message."),
                ("assistant", "Hello! A reply of a certain length, too."),
            ],
        )
    )
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        text = "how many tokens will this message cost"
        await pilot.press(*text)
        await settle(
            pilot, lambda: screen.last_preview is not None and screen.last_preview[0] == text
        )
        expected = budget_figures(app.agent.preview_prompt(cid, text))
        assert screen.budget.figures == expected
        rendered = str(screen.budget.render())
        for label, kind in (
            ("system", "system"),
            ("summary", "summary"),
            ("recall", "recall"),
            ("window", "window"),
        ):
            assert f"{label} {expected[kind]}" in rendered
        assert f"free {expected['free']} of {expected['budget']}" in rendered


async def test_budget_bar_shows_compacting_while_compaction_runs(make_app, seed: Agent):
    """A turn that folds old turns into the summary says 'compacting…' while it does."""
    seed.import_conversation(document("Long", long_turns(12, 10, 10)))
    runtime = ScriptedRuntime(default="A summary of the earlier turns.", chunk_delay_s=0.01)
    app = make_app(runtime, settings={"max_prompt_tokens": 400})
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press(*"one more question")
        await press_nowait(pilot, "enter")
        saw_compacting = False
        for _ in range(1000):
            if screen.budget.compacting:
                saw_compacting = "compacting…" in str(screen.budget.render())
                break
            if (
                not screen.streaming
                and len(screen.chat.message_views) > 24
                and (screen.chat.message_views[-1].data.id is not None)
            ):
                break
            await asyncio.sleep(0.005)
        await settle(pilot)
        assert saw_compacting
        assert not screen.budget.compacting
        assert app.agent.summaries(screen.conversation.id)


async def test_budget_bar_shows_a_background_compaction_after_the_reply(make_app, seed: Agent):
    """With background compaction the reply comes first; the bar says so while old turns fold."""
    cid = seed.import_conversation(document("Long", long_turns(4, 9, 7)))
    reply = " ".join(f"word{i}" for i in range(100))  # takes the window past its high mark
    summary = "A summary of the earlier turns, folded while the person was reading."
    runtime = ScriptedRuntime(replies=[reply], default=summary, chunk_delay_s=0.02)
    app = make_app(
        runtime, settings={"max_prompt_tokens": 1000, "summarizer": {"background": True}}
    )
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press(*"one more question")
        await press_nowait(pilot, "enter")
        assert await wait_until(lambda: screen.budget.folding)
        assert "compacting in the background…" in str(screen.budget.render())
        # The reply was stored first: the turn itself folded nothing.
        assert [m.content for m in app.agent.messages(cid)][-1] == reply
        assert not app.agent.traces(cid)[-1].compactions
        assert await wait_until(lambda: not screen.budget.folding)
        await settle(pilot)
        assert not screen.budget.folding
        assert "compacting" not in str(screen.budget.render())
        assert "Question 1" in app.agent.summaries(cid)[-1].content  # the oldest turns folded


async def test_a_model_failure_mid_reply_is_shown_and_stored_as_an_error(make_app):
    """The model failing mid-reply: an error notice, the reply kept and marked failed."""
    app = make_app(ScriptedRuntime(replies=[RuntimeError("the GPU caught fire")]))
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press(*"hello", "enter")
        await settle(pilot)
        stored = app.agent.messages(screen.conversation.id)
        assert [(m.role, m.status) for m in stored] == [
            ("user", "complete"),
            ("assistant", "error"),
        ]
        view = screen.chat.message_views[-1]
        assert view.data.status == "error" and "failed" in str(view._header.render())
        assert any("GPU caught fire" in str(n.message) for n in app._notifications)


async def test_a_message_too_large_for_the_budget_is_refused_and_given_back(make_app):
    """A message that cannot fit the prompt even alone: nothing stored, the text returns."""
    app = make_app(settings={"max_prompt_tokens": 64})
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press(*"short", "enter")
        await settle(pilot)
        cid = screen.conversation.id
        huge = "word " * 200
        screen.composer.text = huge
        await pilot.press("enter")
        await settle(pilot)
        assert len(app.agent.messages(cid)) == 2
        assert screen.composer.text == huge
        assert [v.text for v in screen.chat.message_views] == ["short", "OK."]
        assert any(n.title == "Not sent" for n in app._notifications)


async def test_inspector_summary_chain_jumps_to_the_covered_messages(make_app, seed: Agent):
    """The inspector lists each summary with its range; its button opens the chat there."""
    turns = [("user" if i % 2 == 0 else "assistant", f"turn number {i + 1}") for i in range(120)]
    cid = seed.import_conversation(document("Chain", turns))
    for start, end, parent in ((1, 40, None), (41, 80, 1)):
        parent_id = seed._store.latest_summary(cid).id if parent else None
        seed._store.add_summary(
            cid,
            content=f"Summary of turns {start} to {end}.",
            covers_from_seq=start,
            covers_through_seq=end,
            parent_id=parent_id,
            token_count=7,
            tokenizer_id="scripted-words-v1",
            model="scripted",
            prompt_version="v1",
        )
    chain = seed.summaries(cid)
    app = make_app()
    async with app.run_test(size=(160, 44)) as pilot:
        screen = await ready(pilot)
        await pilot.press("f3")
        await settle(pilot, lambda: bool(screen.inspector.query(ChainLink)))
        links = list(screen.inspector.query(ChainLink))
        assert [
            (li.summary.id, li.summary.covers_from_seq, li.summary.covers_through_seq)
            for li in links
        ] == [(s.id, s.covers_from_seq, s.covers_through_seq) for s in chain]
        assert min(v.data.seq for v in screen.chat.message_views) > 80
        oldest = links[-1]
        oldest.query_one("Button").press()
        await settle(pilot)
        assert screen.chat.selected.data.seq == 1
        assert 1 in [v.data.seq for v in screen.chat.message_views]
