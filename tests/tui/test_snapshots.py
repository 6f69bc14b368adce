"""Snapshot tests of the main screens at a fixed size, theme and set of timestamps.

Update the baselines with `pytest tests/tui/test_snapshots.py --snapshot-update`
after checking the new pictures in the report pytest-textual-snapshot writes.
"""

from __future__ import annotations

from datetime import timedelta

from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.tui.app import RecursaApp
from textual.pilot import Pilot
from tui_helpers import BASE_TIME, demo_conversation, ready, set_updated_at, settle

SIZE = (120, 36)
MISSING_MODEL = "/nonexistent/models/recursa-snapshot-model.gguf"


def fixed(app: RecursaApp):  # type: ignore[no-untyped-def]
    """A run_before that waits for start-up and removes what changes between runs."""

    async def run_before(pilot: Pilot) -> None:
        app.theme = "textual-dark"
        await ready(pilot)
        unfocus(app)
        await settle(pilot)

    return run_before


def unfocus(app: RecursaApp) -> None:
    """No focused text box: a blinking cursor would differ between runs."""
    app.main_screen.composer.cursor_blink = False
    app.main_screen.set_focus(None)


def seeded_app(tui_db: str, seed: Agent) -> RecursaApp:
    cid, other = demo_conversation(seed)
    set_updated_at(
        tui_db, {cid: BASE_TIME + timedelta(minutes=20), other: BASE_TIME - timedelta(days=2)}
    )
    return RecursaApp(model=ScriptedRuntime(), db_url=tui_db)


def test_snapshot_main_screen_with_a_conversation(snap_compare, tui_db, seed):
    """Sidebar, a conversation with Markdown replies and a pinned message, the budget bar."""
    app = seeded_app(tui_db, seed)
    assert snap_compare(app, terminal_size=SIZE, run_before=fixed(app))


def test_snapshot_inspector_with_a_summary_chain(snap_compare, tui_db, seed):
    """The inspector on the next prompt: sections with tokens, the summary chain."""
    app = seeded_app(tui_db, seed)
    before = fixed(app)

    async def run_before(pilot: Pilot) -> None:
        await before(pilot)
        await pilot.press("f3")
        await settle(pilot, lambda: app.main_screen.inspector.plan is not None)
        unfocus(app)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_first_run(snap_compare, tui_db):
    """An empty database: the welcome text and an empty list."""
    app = RecursaApp(model=ScriptedRuntime(), db_url=tui_db)
    assert snap_compare(app, terminal_size=SIZE, run_before=fixed(app))


def test_snapshot_missing_model_dialog(snap_compare, tui_db):
    """The error dialog for a model that does not exist."""
    app = RecursaApp(model=MISSING_MODEL, db_url=tui_db)

    async def run_before(pilot: Pilot) -> None:
        app.theme = "textual-dark"
        await ready(pilot)
        unfocus(app)
        await settle(pilot, lambda: app.screen is not app.main_screen)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
