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

import contextlib
import errno
import io
import os
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version
from typing import IO, TYPE_CHECKING, NoReturn

import click
from recursa.tui.cli.common import DB_HELP, AliasedGroup, CliState, exit_code_for, log_failure
from recursa.tui.safe_text import one_line

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
@click.option("--debug", is_flag=True, help="On an unexpected failure, print the traceback too.")
@click.pass_context
def cli(ctx: click.Context, db_url: str | None, debug: bool) -> None:
    """recursa: dialogue agents with recursive, SQL-persisted memory.

    Run without a command to open the chat UI.
    """
    from recursa.agent.logs import configure_logging

    configure_logging()
    if db_url is not None and not db_url.strip():
        raise click.BadParameter(
            "is empty: give a database URL, or leave --db out to use the default database.",
            param_hint="'--db'",
        )
    obj = ctx.ensure_object(CliState)
    obj.db_url, obj.debug = db_url, debug
    if db_url is not None:
        # The `db` commands take their own --url; the global --db becomes its default.
        url_default = {"url": db_url}
        ctx.default_map = {
            **(ctx.default_map or {}),
            "db": {"upgrade": url_default, "current": url_default, "path": url_default},
        }
    if ctx.invoked_subcommand is None:
        from recursa.tui.cli.chat import launch_tui

        launch_tui(conversation_id=None, model=None, command="recursa")


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

    for command in (
        ask_command,
        chat_command,
        conversations,
        prompt_command,
        trace_command,
        summaries_command,
        models_command,
        db,
        dataset,
        finetune_command,
        rate_command,
        serve_command,
        summarize_command,
    ):
        group.add_command(command)
    group.add_command(write)


_register(cli)


def _recursa_error() -> type[RecursaError]:
    # Called by an `except` clause, so only when an exception is being handled:
    # a run that raises nothing never imports the agent package.
    from recursa.agent import RecursaError

    return RecursaError


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: each failure is one line on stderr and exit code 1 or 2, never a traceback.

    A RecursaError or a usage mistake says what to do; an unexpected exception
    (a bug) is written with its traceback to the log file, which the line
    names (`--debug` prints the traceback as well). A closed pipe on stdout
    (`recursa c list | head -1`) ends quietly.
    """
    obj = CliState()
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        cli.main(args=args, prog_name="recursa", standalone_mode=False, obj=obj)
        _flush(sys.stdout)
    except click.exceptions.Abort:
        _fail("Aborted.", 1)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "recursa"
        message = one_line(exc.format_message()).rstrip(".")
        _fail(f"Error: {message}. See '{where} --help'.", exc.exit_code)
    except click.ClickException as exc:
        _fail(f"Error: {one_line(exc.format_message())}", exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _fail("Interrupted.", 130)
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say, and nowhere to say it.
        _silence(sys.stdout)
        sys.exit(1)
    except _recursa_error() as exc:
        code = exit_code_for(exc)
        log_failure(exc, code, command=" ".join(["recursa", *args]))
        _fail(f"Error: {one_line(exc)}", code)
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRNOS:
            _crash(exc, args, debug=obj.debug)
        _silence(sys.stdout)
        _fail(
            f"Error: cannot write the output ({one_line(exc.strerror or exc)}). Free some space "
            "or send the output somewhere else, and run the command again.",
            1,
        )
    except Exception as exc:
        _crash(exc, args, debug=obj.debug)


# Errors of writing the output: a full disk, a quota, a device that fails.
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EPIPE})


def _crash(exc: BaseException, args: list[str], *, debug: bool) -> NoReturn:
    """An unexpected exception: traceback to the log file, one line naming it on stderr, exit 1."""
    from recursa.agent.logs import record_crash

    command = " ".join(["recursa", *args])
    where = record_crash(exc, command)
    if debug:
        traceback.print_exception(exc)
    kind = type(exc).__name__
    if where.path is not None:
        hint = f"the traceback is in {where.path}" + ("" if debug else " (--debug prints it)")
    else:
        hint = (
            f"the traceback could not be saved ({where.problem}); run the command again "
            "with --debug to print it"
        )
    _fail(
        f"Error: unexpected failure ({kind}: {one_line(exc)}); this is a bug in recursa: {hint}.", 1
    )


def _fail(line: str, code: int) -> NoReturn:
    # When stderr itself is gone, the exit code is all that is left to report with.
    with contextlib.suppress(OSError):
        click.echo(line, err=True)
    sys.exit(code)


def _flush(stream: IO[str] | None) -> None:
    if stream is not None and not stream.closed:
        stream.flush()


def _silence(stream: IO[str] | None) -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail again at exit."""
    devnull = open(os.devnull, "w")  # noqa: SIM115  # lives until the process ends
    try:
        if stream is not None:
            os.dup2(devnull.fileno(), stream.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # not a real file (a test's capture): replacing the object below is enough
    sys.stdout = devnull
