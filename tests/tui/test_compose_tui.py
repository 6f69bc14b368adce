"""Pilot tests of composition in the TUI: the dialog, streaming steps, Esc, resume, the command."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence

from recursa.agent.runtime.protocol import ChatMessage
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.tui.app import RecursaApp
from recursa.tui.screens.compose_dialog import ComposeDialog
from recursa.tui.screens.help import HelpScreen
from recursa.tui.screens.main import MainScreen
from textual.widgets import Input, Static, TextArea
from tui_helpers import press_nowait, ready, settle

SIZE = (120, 36)


def fresh_prose() -> Callable[[Sequence[ChatMessage]], str]:
    """A scripted model that writes new words on every call (so nothing looks like a loop);
    each step keeps the first step_tokens of it."""
    calls = itertools.count()

    def write(_messages: Sequence[ChatMessage]) -> str:
        n = next(calls)
        return " ".join(f"w{n}x{i}" for i in range(400))

    return write


def spec_of(app: RecursaApp, cid: int) -> dict:  # type: ignore[type-arg]
    return app.agent.messages(cid, limit=1)[0].metadata["composition"]


def steps_of(app: RecursaApp, cid: int) -> list:  # type: ignore[type-arg]
    return [m for m in app.agent.messages(cid) if m.role == "assistant"]


async def open_dialog(pilot, screen: MainScreen, target: str, step: str) -> ComposeDialog:  # type: ignore[no-untyped-def]
    await pilot.press("f5")
    await settle(pilot, lambda: isinstance(pilot.app.screen, ComposeDialog))
    dialog = pilot.app.screen
    assert isinstance(dialog, ComposeDialog)
    dialog.query_one("#opening", TextArea).text = "Today the weather"
    dialog.query_one("#target", Input).value = target
    dialog.query_one("#step", Input).value = step
    return dialog


async def test_composition_from_the_dialog_streams_steps_that_are_stored(make_app):
    """F5, fill in the dialog, Ctrl+S: steps stream in as replies, stored, stop reason target."""
    app = make_app(ScriptedRuntime(default=fresh_prose()))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await open_dialog(pilot, screen, "40", "10")
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: not screen.composing)
        cid = screen.conversation.id
        assert screen.conversation.kind == "composition"
        stored = steps_of(app, cid)
        assert len(stored) == 4 and all(m.status == "complete" for m in stored)
        assert sum(m.metadata["tokens"] for m in stored) == 40
        assert spec_of(app, cid)["stop_reason"] == "target"
        shown = [v for v in screen.chat.message_views if v.data.role == "assistant"]
        assert [v.data.id for v in shown] == [m.id for m in stored]
        assert [v.text for v in shown] == [m.content for m in stored]
        assert "ended (target): 40/40 tokens · 4 steps" in screen.budget.status
        # each step is a stored reply with a trace: the inspector shows it
        screen.chat.focus()
        await pilot.press("i")
        await settle(pilot, lambda: screen.inspector.plan is not None)
        assert screen.inspector.subject == f"Reply #{stored[-1].seq}"
        assert screen.inspector.plan == app.agent.trace(stored[-1].id).plan


async def test_escape_stops_a_composition_and_resume_finishes_it(make_app):
    """Esc mid-composition: stop reason cancelled, steps kept; Ctrl+G resumes it to the target."""
    runtime = ScriptedRuntime(default=fresh_prose(), chunk_delay_s=0.01)
    app = make_app(runtime)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await open_dialog(pilot, screen, "200", "20")
        await pilot.press("ctrl+s")
        for _ in range(1000):
            if screen.conversation is not None and len(steps_of(app, screen.conversation.id)) >= 2:
                break
            await asyncio.sleep(0.01)
        await press_nowait(pilot, "escape")
        await settle(pilot, lambda: not screen.composing)
        cid = screen.conversation.id
        assert spec_of(app, cid)["stop_reason"] == "cancelled"
        kept = steps_of(app, cid)
        assert len(kept) >= 2
        assert sum(m.metadata["tokens"] for m in kept) < 200
        assert "cancelled" in screen.budget.status

        runtime.chunk_delay_s = 0.0
        await pilot.press("ctrl+g")
        await settle(pilot)
        await settle(pilot, lambda: not screen.composing and "target" in screen.budget.status)
        assert spec_of(app, cid)["stop_reason"] == "target"
        after = steps_of(app, cid)
        assert [m.id for m in after[: len(kept)]] == [m.id for m in kept]  # nothing rewritten
        assert sum(m.metadata["tokens"] for m in after) == 200
        shown = {v.data.id for v in screen.chat.message_views}
        assert {m.id for m in after} <= shown

        await pilot.press("ctrl+g")  # nothing left to write: says so, starts nothing
        await settle(pilot)
        assert steps_of(app, cid) == after


async def test_bad_sizes_show_an_error_in_the_dialog_and_start_nothing(make_app):
    """A zero, negative or non-numeric size keeps the dialog open with a message."""
    app = make_app(ScriptedRuntime(default=fresh_prose()))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        dialog = await open_dialog(pilot, screen, "0", "10")
        await pilot.press("ctrl+s")
        await settle(pilot)
        error = str(dialog.query_one("#compose-error", Static).render())
        assert "Target tokens" in error and "above 0" in error
        dialog.query_one("#target", Input).value = "100"
        dialog.query_one("#step", Input).value = "ten"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is dialog
        assert "Tokens per step" in str(dialog.query_one("#compose-error", Static).render())
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen and not screen.composing
        assert app.agent.list_conversations(kind="composition") == []


async def test_a_step_larger_than_the_budget_is_refused_with_the_fix(make_app):
    """The library's budget error is shown as a notification; no composition is stored."""
    app = make_app(ScriptedRuntime(default=fresh_prose()))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await open_dialog(pilot, screen, "100", "100000")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not screen.composing
        assert any("step" in n.message for n in app._notifications)
        assert app.agent.list_conversations(kind="composition") == []


async def test_composition_commands_are_in_the_palette_and_help(make_app):
    """Both commands are offered by the command palette and listed with their keys in help."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        titles = {c.title: c.help for c in app.get_system_commands(screen)}
        assert "[F5]" in titles["New composition"] and "[Ctrl+G]" in titles["Resume composition"]
        await pilot.press("f1")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        from tui_helpers import screen_text

        text = screen_text(app)
        assert "New composition" in text and "Resume composition" in text


async def test_a_preset_chosen_in_the_dialog_gives_the_opening_and_instructions(make_app):
    """With an empty opening and the 'weather' preset, the stored composition uses the preset's."""
    from recursa.agent.compose.presets import get_preset
    from textual.widgets import Select

    app = make_app(ScriptedRuntime(default=fresh_prose()))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        dialog = await open_dialog(pilot, screen, "20", "10")
        dialog.query_one("#opening", TextArea).text = ""
        dialog.query_one("#preset", Select).value = "weather"
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: not screen.composing)
        cid = screen.conversation.id
        preset = get_preset("weather")
        spec = spec_of(app, cid)
        assert spec["preset"] == "weather" and spec["opening"] == preset.opening
        assert spec["stop_reason"] == "target"
        assert app.agent.messages(cid)[1].content == preset.opening


async def test_a_model_failure_mid_composition_is_shown_and_resume_goes_on(make_app):
    """The model fails in step 2: an error notification, step 1 kept; Ctrl+G finishes it."""
    write = fresh_prose()
    runtime = ScriptedRuntime(replies=[write, RuntimeError("the model fell over")], default=write)
    app = make_app(runtime)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await open_dialog(pilot, screen, "30", "10")
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: not screen.composing)
        cid = screen.conversation.id
        assert any(n.title == "Composition failed" for n in app._notifications)
        assert any("the model fell over" in n.message for n in app._notifications)
        first = [m for m in steps_of(app, cid) if m.status == "complete"]
        assert len(first) == 1
        await pilot.press("ctrl+g")
        await settle(pilot, lambda: not screen.composing and "(target)" in screen.budget.status)
        assert spec_of(app, cid)["stop_reason"] == "target"
        assert steps_of(app, cid)[0].id == first[0].id
