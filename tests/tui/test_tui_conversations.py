"""Pilot tests of the conversation list: switching, search, rename, archive, delete, paging."""

from __future__ import annotations

import asyncio

import pytest
from recursa.agent import Agent
from recursa.agent.errors import NotFoundError
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.memory.store import NewMessage
from recursa.tui.screens.dialogs import ConfirmDialog
from recursa.tui.screens.main import PAGE
from recursa.tui.widgets.chat import MessageView
from recursa.tui.widgets.sidebar import ConversationItem, ResultItem
from tui_helpers import document, press_nowait, ready, settle


def titles_in_list(screen) -> list[str]:
    return [item.info.title for item in screen.sidebar.query(ConversationItem)]


async def test_switching_conversations_shows_each_ones_messages(make_app, seed: Agent):
    """Opening another conversation from the list shows its messages; newest is listed first."""
    a = seed.import_conversation(
        document("Apples", [("user", "I like apples."), ("assistant", "Apples are great.")])
    )
    b = seed.import_conversation(
        document("Bananas", [("user", "Bananas?"), ("assistant", "Yellow.")])
    )
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        assert titles_in_list(screen) == ["Bananas", "Apples"]
        assert screen.conversation.id == b
        assert [v.text for v in screen.chat.message_views] == ["Bananas?", "Yellow."]
        screen.sidebar.conversation_list.focus()
        await pilot.press("down", "enter")
        await settle(pilot)
        assert screen.conversation.id == a
        assert [v.text for v in screen.chat.message_views] == [
            "I like apples.",
            "Apples are great.",
        ]


async def test_switching_conversations_while_a_reply_streams(make_app, seed: Agent):
    """The UI stays usable during generation: another conversation opens; the reply is stored."""
    a = seed.import_conversation(document("Apples", [("user", "I like apples.")]))
    b = seed.import_conversation(document("Bananas", [("user", "Bananas?")]))
    long_reply = " ".join(f"w{i}" for i in range(120))
    app = make_app(ScriptedRuntime(replies=[long_reply], chunk_delay_s=0.02))
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        assert screen.conversation.id == b
        await pilot.press(*"tell me more")
        await press_nowait(pilot, "enter")
        for _ in range(300):
            if screen.streaming:
                break
            await asyncio.sleep(0.01)
        screen.open_conversation(a)
        for _ in range(300):
            if screen.conversation.id == a and screen.chat.message_views:
                break
            await asyncio.sleep(0.01)
        assert screen.streaming, "the reply is still being written"
        assert [v.text for v in screen.chat.message_views] == ["I like apples."]
        await settle(pilot)
        assert [m.content for m in app.agent.messages(b)] == [
            "Bananas?",
            "tell me more",
            long_reply,
        ]


async def test_search_result_opens_the_conversation_at_the_matching_message(make_app, seed):
    """A full-text hit opens its conversation scrolled to, and selecting, that message."""
    turns = [
        ("user" if i % 2 == 0 else "assistant", f"ordinary message number {i}") for i in range(300)
    ]
    turns[123] = ("assistant", "the secret word is xylophone, remember it")
    target = seed.import_conversation(document("Long one", turns))
    seed.import_conversation(document("Other", [("user", "nothing here")]))
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press("ctrl+f", *"xylophone")
        await settle(pilot, lambda: bool(screen.sidebar.query(ResultItem)))
        hits = list(screen.sidebar.query(ResultItem))
        assert [(h.hit.conversation_id, h.hit.seq) for h in hits] == [(target, 124)]
        await pilot.press("enter")  # moves to the results
        await pilot.press("enter")  # opens the highlighted one
        await settle(pilot)
        assert screen.conversation.id == target
        selected = screen.chat.selected
        assert selected is not None and selected.data.seq == 124
        assert "xylophone" in selected.text
        assert selected.has_class("-match")
        seqs = [v.data.seq for v in screen.chat.message_views]
        assert 300 not in seqs and len(seqs) <= PAGE  # opened mid-way, one page


async def test_rename_from_the_keyboard(make_app, seed: Agent):
    """F2 asks for a title; the new title is stored and shown in the list."""
    cid = seed.import_conversation(document("Old title", [("user", "hi")]))
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press("f2")
        await settle(pilot)
        await pilot.press("ctrl+a", "ctrl+k", *"New title", "enter")
        await settle(pilot)
        assert app.agent.get_conversation(cid).title == "New title"
        assert titles_in_list(screen) == ["New title"]
        assert screen.sub_title == "New title"


async def test_delete_asks_first_and_cancel_keeps_the_conversation(make_app, seed: Agent):
    """Delete shows a confirmation; Cancel keeps everything, Delete removes it."""
    keep = seed.import_conversation(document("Keep me", [("user", "a")]))
    doomed = seed.import_conversation(document("Delete me", [("user", "b")]))
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        assert screen.conversation.id == doomed
        await pilot.press("f8")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("escape")
        await settle(pilot)
        assert app.agent.get_conversation(doomed).title == "Delete me"
        screen.sidebar.conversation_list.focus()
        await pilot.press("d")  # the list's own key for the highlighted conversation
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.click("#confirm")
        await settle(pilot)
        with pytest.raises(NotFoundError):
            app.agent.get_conversation(doomed)
        assert titles_in_list(screen) == ["Keep me"]
        assert screen.conversation.id == keep


async def test_archive_hides_the_conversation_but_keeps_it(make_app, seed: Agent):
    """Archiving (here from the command palette) removes it from the list, not the database."""
    seed.import_conversation(document("Stays", [("user", "a")]))
    gone = seed.import_conversation(document("Archived", [("user", "b")]))
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*"Archive conversation")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.agent.get_conversation(gone).archived
        assert titles_in_list(screen) == ["Stays"]


async def test_new_conversation_and_first_message_titles_it(make_app):
    """On first run a message starts a conversation named after it; Ctrl+N makes another."""
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        assert screen.conversation is None
        await pilot.press(*"Plan a trip to Lisbon", "enter")
        await settle(pilot)
        assert titles_in_list(screen) == ["Plan a trip to Lisbon"]
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert len(app.agent.list_conversations()) == 2
        assert screen.chat.message_views == []


async def test_a_conversation_of_5000_messages_opens_one_page_at_a_time(make_app, seed: Agent):
    """Only the newest page is mounted; scrolling to the top mounts the page before it."""
    cid = seed.create_conversation(title="Huge")
    seed._store.append_messages(
        cid,
        [
            NewMessage(role="user" if i % 2 == 0 else "assistant", content=f"message {i + 1}")
            for i in range(5000)
        ],
    )
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        views = list(screen.query(MessageView))
        assert len(views) == PAGE
        assert [v.data.seq for v in views] == list(range(5001 - PAGE, 5001))
        assert screen.chat.has_older
        screen.chat.scroll_home(animate=False)
        await settle(pilot, lambda: len(screen.query(MessageView)) == 2 * PAGE)
        seqs = [v.data.seq for v in screen.query(MessageView)]
        assert seqs == list(range(5001 - 2 * PAGE, 5001))
