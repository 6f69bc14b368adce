"""End to end through the UI with the real default model (SmolLM2-135M, greedy decoding)."""

from __future__ import annotations

import asyncio

import pytest
from recursa.tui.app import RecursaApp
from recursa.tui.widgets.inspector import SectionView
from textual.widgets import Label
from tui_helpers import ready, settle

pytestmark = pytest.mark.model


async def test_smollm2_reply_is_streamed_shown_and_stored(tui_db):
    """The default model loads in a worker, answers a message, and the reply is stored
    with a trace the inspector shows."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    app = RecursaApp(
        model="smollm2-135m", db_url=tui_db, settings={"max_new_tokens": 12, "temperature": 0.0}
    )
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.main_screen
        # The window is up while the model loads: the loading line shows what is happening.
        progress: set[str] = set()
        while not screen.model_ready and app.model_error is None:
            if screen.is_mounted and screen.query_one("#loading").has_class("-active"):
                progress.add(str(screen.query_one("#loading-label", Label).render()))
            await asyncio.sleep(0.01)
        assert any("smollm2" in text.lower() for text in progress), progress
        assert not screen.query_one("#loading").has_class("-active")
        await ready(pilot)
        assert app.model_error is None, app.model_error
        assert screen.model_ready
        await pilot.press(*"What is the capital of France?", "enter")
        await settle(
            pilot,
            lambda: (
                len(screen.chat.message_views) == 2
                and screen.chat.message_views[1].data.id is not None
            ),
            timeout=240,
        )
        user, reply = screen.chat.message_views
        stored = app.agent.messages(screen.conversation.id)
        assert [m.role for m in stored] == ["user", "assistant"]
        assert stored[1].content.strip(), "the model wrote something"
        assert reply.text == stored[1].content
        assert stored[1].status == "complete"
        trace = app.agent.trace(stored[1].id)
        assert trace.model and trace.usage.get("completion_tokens", 0) <= 12
        await pilot.press("ctrl+up", "i")
        await settle(pilot, lambda: bool(screen.inspector.query(SectionView)), timeout=60)
        shown = [(s.kind, s.tokens) for s in screen.inspector.query(SectionView)]
        assert shown == [(s.kind, s.tokens) for s in trace.plan.sections]
