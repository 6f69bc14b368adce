"""Typing before the model is ready: a message sent while it loads is stored, then answered.

The model is the scripted one, opened through the runtime registry behind a
held loader (the registry's `open_runtime`, made to wait for the test's signal),
so the test decides when loading ends.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from recursa.agent.runtime import registry
from recursa.tui.app import RecursaApp
from tui_helpers import settle


@pytest.fixture
def held_loading(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Model loading waits until the returned event is set."""
    release = threading.Event()
    real = registry.open_runtime

    def held_open_runtime(spec: str | None = None, **kwargs: Any) -> Any:
        release.wait(timeout=60)
        return real(spec, **kwargs)

    monkeypatch.setattr(registry, "open_runtime", held_open_runtime)
    return release


async def until(condition: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_message_sent_while_the_model_loads_is_stored_then_answered(
    tui_db: str, held_loading: threading.Event
) -> None:
    """Enter during loading stores the message at once, marks it waiting, answers it once loaded."""
    app = RecursaApp(model="scripted", db_url=tui_db)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.main_screen
        await until(lambda: app.agent is not None)
        assert not screen.model_ready
        await pilot.press(*"hello before the model", "enter")
        await until(lambda: len(screen.chat.message_views) == 1)
        agent = app.agent
        assert agent is not None and screen.conversation is not None
        cid = screen.conversation.id
        # Stored before the model exists, and shown as waiting for it.
        stored = agent.messages(cid)
        assert [(m.role, m.content) for m in stored] == [("user", "hello before the model")]
        view = screen.chat.message_views[0]
        assert view.data.waiting and view.data.id == stored[0].id
        assert not screen.model_ready and screen.composer.text == ""

        held_loading.set()
        await settle(
            pilot,
            lambda: (
                len(screen.chat.message_views) == 2
                and screen.chat.message_views[1].data.id is not None
            ),
        )
        stored = agent.messages(cid)
        assert [(m.role, m.content) for m in stored] == [
            ("user", "hello before the model"),
            ("assistant", "OK."),
        ]
        user_view, reply_view = screen.chat.message_views
        assert not user_view.data.waiting
        assert reply_view.data.id == stored[1].id and reply_view.text == "OK."
        trace = agent.trace(stored[1].id)
        assert trace.plan.section("new").message_ids == [stored[0].id]
        assert not any("regenerated" in note for note in trace.notes)
