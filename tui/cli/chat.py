"""`recursa chat`: open the terminal UI (also what `recursa` alone does)."""

from __future__ import annotations

import sys

import click
from recursa.tui.cli.common import ID, USAGE_EXIT, CliError, model_option, open_agent, state


@click.command("chat")
@click.option(
    "-c",
    "--conversation",
    "conversation_id",
    type=ID,
    default=None,
    help="Open this conversation (default: start on the conversation list).",
)
@model_option
def chat_command(conversation_id: int | None, model: str | None) -> None:
    """Chat in the terminal UI."""
    launch_tui(conversation_id=conversation_id, model=model, command="recursa chat")


def require_terminal(command: str) -> None:
    """A usage error unless stdin and stdout are a terminal: the UI would wait on a pipe."""
    if all(_is_tty(stream) for stream in (sys.stdin, sys.stdout)):
        return
    raise CliError(
        f"`{command}` opens the chat screen, which needs a terminal, and this has none "
        "(input or output is a pipe or a file). From a script, use "
        '`recursa ask "your message"` (or pipe the message into `recursa ask`).',
        USAGE_EXIT,
    )


def _is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


def launch_tui(*, conversation_id: int | None, model: str | None, command: str) -> None:
    """Check the conversation exists, then run the TUI (imported only now: it is heavy)."""
    db_url = state().db_url
    if conversation_id is not None:
        with open_agent(conversation_id=conversation_id):
            pass  # an unknown id fails here with a one-line error, before the screen opens
    require_terminal(command)
    try:
        from recursa.tui.app import run_app
    except ModuleNotFoundError as exc:
        if exc.name not in ("recursa.tui.app",):
            raise
        raise CliError(
            "The terminal UI is not installed with this copy of recursa; use `recursa ask` instead."
        ) from exc
    run_app(conversation_id=conversation_id, model=model, db_url=db_url)
