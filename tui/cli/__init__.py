"""The `recursa` command line: a click group, with one module per command group.

`main()` is the console-script entry point. It turns any `RecursaError` into a
single `Error: ...` line on stderr and exit code 1, never a traceback: those
errors are user-facing conditions whose message already names the fix.
To add a command group, write it in its own module here and register it in
`_register` below.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

import click
from recursa.memory.errors import RecursaError


def _version() -> str:
    try:
        return version("recursa")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    _version(), "--version", "-V", prog_name="recursa", message="%(prog)s %(version)s"
)
def cli() -> None:
    """recursa: dialogue agents with recursive, SQL-persisted memory."""


def _register(group: click.Group) -> None:
    # Imported here so each command module stays independent and cheap to load.
    from recursa.tui.cli.db import db

    group.add_command(db)


_register(cli)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; RecursaErrors become one line on stderr and exit code 1."""
    try:
        cli.main(args=argv, prog_name="recursa", standalone_mode=False)
    except RecursaError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
