"""The `recursa` command line: a click group, with one module per command group.

`main()` is the console-script entry point. It turns any `RecursaError` into a
single `Error: ...` line on stderr, never a traceback: those errors are
user-facing conditions whose message already names the fix. The exit code is 2
for a usage mistake and 1 for a model, runtime or database failure (see
`common.exit_code_for`).
To add a command group, write it in its own module here and register it in
`_register` below.

Importing this module (and so `recursa --help` and `--version`) loads no agent
module: the commands import what they use when they run. A command that runs
first sets up the log file (`recursa.agent.logs`).
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import click
from recursa.tui.cli.common import DB_HELP, AliasedGroup, CliState, exit_code_for, log_failure

if TYPE_CHECKING:
    from recursa.agent import RecursaError


def _version() -> str:
    try:
        return version("recursa")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


@click.group(
    cls=AliasedGroup,
    aliases={"c": "conversations"},
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(
    _version(), "--version", "-V", prog_name="recursa", message="%(prog)s %(version)s"
)
@click.option("--db", "db_url", metavar="URL", default=None, help=DB_HELP)
@click.pass_context
def cli(ctx: click.Context, db_url: str | None) -> None:
    """recursa: dialogue agents with recursive, SQL-persisted memory.

    Run without a command to open the chat UI.
    """
    from recursa.agent.logs import configure_logging

    configure_logging()
    ctx.obj = CliState(db_url=db_url)
    if db_url is not None:
        # The `db` commands take their own --url; the global --db becomes its default.
        url_default = {"url": db_url}
        ctx.default_map = {
            **(ctx.default_map or {}),
            "db": {"upgrade": url_default, "current": url_default, "path": url_default},
        }
    if ctx.invoked_subcommand is None:
        from recursa.tui.cli.chat import launch_tui

        launch_tui(conversation_id=None, model=None)


def _register(group: click.Group) -> None:
    # Imported here so each command module stays independent and cheap to load
    # (none of them imports the agent, the model or the TUI at import time).
    from recursa.tui.cli.ask import ask_command
    from recursa.tui.cli.chat import chat_command
    from recursa.tui.cli.conversations import conversations
    from recursa.tui.cli.db import db
    from recursa.tui.cli.inspect import prompt_command, summaries_command, trace_command
    from recursa.tui.cli.models import models_command
    from recursa.tui.cli.serve import serve_command
    from recursa.tui.cli.summarize import summarize_command
    from recursa.tui.cli.train import dataset, finetune_command, rate_command
    from recursa.tui.cli.write import write

    for command in (ask_command, chat_command, conversations, prompt_command, trace_command,
                    summaries_command, models_command, db, dataset, finetune_command,
                    rate_command, serve_command, summarize_command):
        group.add_command(command)
    group.add_command(write)


_register(cli)


def _recursa_error() -> type[RecursaError]:
    # Called by an `except` clause, so only when an exception is being handled:
    # a run that raises nothing never imports the agent package.
    from recursa.agent import RecursaError

    return RecursaError


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; RecursaErrors become one line on stderr and exit code 1 or 2."""
    try:
        cli.main(args=argv, prog_name="recursa", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except _recursa_error() as exc:
        code = exit_code_for(exc)
        args = argv if argv is not None else sys.argv[1:]
        log_failure(exc, code, command=" ".join(["recursa", *args]))
        click.echo(f"Error: {exc}", err=True)
        sys.exit(code)
