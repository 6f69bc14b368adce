"""The recursa Textual app: `RecursaApp` and `run_app`, the entry point `recursa chat` calls.

The window appears at once; the database and the model open in a thread
worker, with the model's loading (and first-run conversion) shown as progress.
A problem the user can fix (no model, an unreachable or too-new database)
shows a dialog with the fix instead of a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from recursa.agent import (
    ConfigError,
    MissingDependencyError,
    ModelError,
    ModelNotFoundError,
    RecursaError,
    StoreError,
)
from recursa.tui.commands import COMMANDS
from recursa.tui.screens.dialogs import ErrorDialog
from recursa.tui.screens.main import MainScreen
from textual import work
from textual.app import App, SystemCommand
from textual.screen import Screen

if TYPE_CHECKING:
    from recursa.agent import Agent
    from recursa.agent.runtime.protocol import Runtime

log = logging.getLogger(__name__)


def error_title(exc: RecursaError, *, loading_model: bool) -> str:
    """A dialog title that says which part failed."""
    if isinstance(exc, ModelNotFoundError):
        return "Model not found"
    if isinstance(exc, MissingDependencyError):
        return "A dependency of the model is missing"
    if isinstance(exc, ModelError) or loading_model:
        return "The model could not be loaded"
    if isinstance(exc, StoreError):
        return "Database problem"
    if isinstance(exc, ConfigError):
        return "Configuration problem"
    return "recursa could not start"


class RecursaApp(App[None]):
    """Streaming chat over recursa's recursive memory.

    `model` is a spec string (default: the configured model) or a runtime
    object (tests pass a ScriptedRuntime); `settings` are Agent setting
    overrides (e.g. max_new_tokens=32).
    """

    TITLE = "recursa"

    def __init__(
        self,
        *,
        conversation_id: int | None = None,
        model: str | Runtime | None = None,
        db_url: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.conversation_id = conversation_id
        self.model_spec = model
        self.db_url = db_url
        self.settings_overrides = dict(settings or {})
        self.agent: Agent | None = None
        self.main_screen = MainScreen()
        self.model_error: RecursaError | None = None

    def on_mount(self) -> None:
        self.push_screen(self.main_screen)
        self.open_agent()

    def on_unmount(self) -> None:
        # Stop a reply still being written (it is stored as interrupted) before closing.
        self.main_screen.action_stop()
        if self.agent is not None:
            self.agent.close()

    @work(thread=True, exclusive=True, group="startup")
    def open_agent(self) -> None:
        """Open the store, show the conversations, then load the model with progress."""
        from recursa.agent import Agent

        call = self.call_from_thread
        screen = self.main_screen
        try:
            agent = Agent.open(self.db_url, self.model_spec, **self.settings_overrides)
        except RecursaError as exc:
            log.error("The chat UI could not open the database: %s: %s", type(exc).__name__, exc)
            call(self.show_error, error_title(exc, loading_model=False), str(exc), False)
            return
        self.agent = agent
        call(self._set_model_title, agent.model_spec)
        call(screen.agent_opened, self.conversation_id)
        if not agent.model_loaded:
            call(screen.loading_progress, f"Loading {agent.model_spec}…", None)
        try:
            agent.load_model(
                lambda message, fraction: call(screen.loading_progress, message, fraction)
            )
        except RecursaError as exc:
            self.model_error = exc
            call(screen.model_failed)
            call(self.show_error, error_title(exc, loading_model=True), str(exc), True)
            return
        # Asked here, in the worker: a server model may be asked for its window now.
        window_notice = agent.window_notice()
        call(self._set_model_title, agent.model_spec)
        call(screen.model_loaded)
        if window_notice is not None:
            call(self.notify, window_notice, title="Context window", severity="warning", timeout=10)

    def _set_model_title(self, spec: str) -> None:
        self.title = f"recursa · {spec}"

    def show_error(self, title: str, message: str, can_continue: bool) -> None:
        """Show a fixable problem; quitting is the only way on when nothing can work."""

        def closed(choice: str | None) -> None:
            if choice == "quit":
                self.exit(return_code=1)

        self.push_screen(ErrorDialog(title, message, can_continue=can_continue), closed)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, MainScreen):
            for command in COMMANDS:
                if command.palette:
                    yield SystemCommand(
                        command.title,
                        f"{command.help} [{command.key_display}]",
                        partial(screen.run_action, command.action),
                    )


def run_app(
    conversation_id: int | None = None, model: str | None = None, db_url: str | None = None
) -> None:
    """Run the chat app in the terminal (blocks until the user quits)."""
    RecursaApp(conversation_id=conversation_id, model=model, db_url=db_url).run()
