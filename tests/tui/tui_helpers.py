"""Helpers for the TUI tests: wait for the app's workers, build deterministic conversations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from recursa.tui.app import RecursaApp
from recursa.tui.screens.main import MainScreen
from textual.pilot import Pilot

BASE_TIME = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


async def settle(
    pilot: Pilot, until: Callable[[], bool] | None = None, *, timeout: float = 30.0
) -> None:
    """Let workers and pending messages finish; with `until`, also wait for that condition."""
    app = pilot.app
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await app.workers.wait_for_complete()
        await pilot.pause()
        busy = any(w.is_running for w in app.workers)
        if not busy and (until is None or until()):
            await pilot.pause()
            return
        if loop.time() > deadline:
            raise AssertionError("the app did not settle in time")
        await asyncio.sleep(0.02)


async def wait_until(condition: Callable[[], bool], *, seconds: float = 20.0) -> bool:
    """Polls `condition` every 5 ms for up to `seconds`; whether it came true."""
    for _ in range(int(seconds / 0.005)):
        if condition():
            return True
        await asyncio.sleep(0.005)
    return condition()


async def ready(pilot: Pilot) -> MainScreen:
    """Wait until the agent and the model are ready; return the main screen."""
    app = pilot.app
    assert isinstance(app, RecursaApp)
    screen = app.main_screen
    await settle(
        pilot, lambda: app.agent is not None and (screen.model_ready or app.model_error is not None)
    )
    return screen


def document(
    title: str,
    turns: list[tuple[str, str]],
    *,
    start: datetime = BASE_TIME,
    system_prompt: str | None = None,
    pinned: set[int] = frozenset(),
) -> dict[str, Any]:
    """A conversation document with fixed timestamps, one minute apart."""
    return {
        "title": title,
        "system_prompt": system_prompt,
        "messages": [
            {
                "role": role,
                "content": content,
                "created_at": (start + timedelta(minutes=i)).isoformat(),
                "pinned": i in pinned,
            }
            for i, (role, content) in enumerate(turns)
        ],
    }


def set_updated_at(db_url: str, when: dict[int, datetime]) -> None:
    """Give conversations a fixed 'last activity' time (imports stamp the current time)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            for cid, at in when.items():
                conn.execute(
                    text("UPDATE conversations SET updated_at = :at WHERE id = :id"),
                    {"at": at.replace(tzinfo=None), "id": cid},
                )
    finally:
        engine.dispose()


def screen_text(app: RecursaApp) -> str:
    """The screen as plain text (what a snapshot shows, without colours)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()


async def press_nowait(pilot: Pilot, key: str) -> None:
    """Press a key without waiting for the app to go idle (it is busy while a reply streams)."""
    pilot.app.simulate_key(key)
    await asyncio.sleep(0.01)


DEMO_TURNS: list[tuple[str, str]] = [
    ("user", "My sister Ada is a marine biologist in Lisbon."),
    ("assistant", "Noted! Ada studies **marine life** in Lisbon."),
    ("user", "She is writing a paper about octopus camouflage."),
    ("assistant", "Fascinating. Octopuses change colour with *chromatophores*."),
    ("user", "Can you give me three questions to ask her about it?"),
    (
        "assistant",
        "Here are three:\n\n1. How fast can an octopus change colour?\n"
        "2. Do they match texture as well as colour?\n"
        "3. How do you measure camouflage in the wild?",
    ),
    ("user", "Which one is the easiest to answer?"),
    (
        "assistant",
        "Probably the first: colour changes take **under a second**, "
        "so it is easy to film and time.",
    ),
]


def demo_conversation(agent) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A conversation with Markdown replies, a pinned message and a summary of its start,
    plus an older second conversation; all timestamps fixed. Returns both ids."""
    other = agent.import_conversation(
        document(
            "Recipe ideas",
            [
                ("user", "What can I cook with leeks?"),
                ("assistant", "Leek and potato soup is a classic."),
            ],
            start=BASE_TIME - timedelta(days=2),
        )
    )
    cid = agent.import_conversation(document("Questions for Ada", DEMO_TURNS, pinned={0}))
    agent._store.add_summary(
        cid,
        content="The user's sister Ada is a marine biologist in Lisbon.",
        covers_from_seq=1,
        covers_through_seq=2,
        parent_id=None,
        token_count=12,
        tokenizer_id=agent.runtime.tokenizer_id,
        model="scripted",
        prompt_version="v1",
    )
    first = agent._store.latest_summary(cid)
    agent._store.add_summary(
        cid,
        content="Ada (the user's sister, a marine biologist in Lisbon) is writing a "
        "paper on octopus camouflage.",
        covers_from_seq=3,
        covers_through_seq=4,
        parent_id=first.id,
        token_count=22,
        tokenizer_id=agent.runtime.tokenizer_id,
        model="scripted",
        prompt_version="v1",
    )
    return cid, other
