"""What every command module shares: the CLI state, opening the Agent, errors, JSON and tables.

Error policy (documented in the README): a `RecursaError` becomes one line on
stderr (`Error: ...`, naming the fix) and an exit code: 2 for a usage mistake
(bad arguments, unknown ids, malformed input files, invalid settings), 1 for a
model, runtime or database failure. Click's own usage errors exit 2 as well.
Failures of the second kind are also written to the log file (see
`recursa.agent.logs`).

Agent modules are imported inside the functions that use them, so that
`recursa --help` and `--version` load none of them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
from recursa.tui.safe_text import one_line, terminal_safe

if TYPE_CHECKING:
    from pathlib import Path

    from recursa.agent import Agent, RecursaError
    from rich.console import Console
    from rich.table import Table

USAGE_EXIT = 2
PIPED_WIDTH = 160
RUNTIME_EXIT = 1
F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

DB_HELP = (
    "Database URL (default: RECURSA_DB_URL, then db_url in the config file, "
    "then the SQLite file in the data directory)."
)
MODEL_HELP = "Model spec (see `recursa models`; default: the conversation's model, else settings)."


@dataclass
class CliState:
    """Options of the root group that subcommands read (`ctx.obj`)."""

    db_url: str | None = None
    debug: bool = False


class CliError(click.ClickException):
    """A user-facing failure: `Error: <message>` on stderr, with its exit code."""

    def __init__(self, message: str, exit_code: int = RUNTIME_EXIT) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # per instance: 1 or 2 by cause


def exit_code_for(exc: RecursaError) -> int:
    """2 for mistakes in what the user asked, 1 for failures of the model, runtime or database."""
    from recursa.agent import ConfigError, InvalidInputError, NotFoundError

    return (
        USAGE_EXIT
        if isinstance(exc, InvalidInputError | NotFoundError | ConfigError)
        else (RUNTIME_EXIT)
    )


def log_failure(exc: RecursaError, exit_code: int, command: str | None = None) -> None:
    """Write a model, runtime or database failure to the log (user mistakes are not logged).

    `command` defaults to the running command's path (`recursa ask`).
    """
    if exit_code != RUNTIME_EXIT:
        return
    if command is None:
        ctx = click.get_current_context(silent=True)
        path = ctx.command_path.split()[1:] if ctx is not None else []
        command = " ".join(["recursa", *path])
    log.error("%s failed: %s: %s", command, type(exc).__name__, exc)


@contextmanager
def translate_errors(agent: Agent | None = None) -> Iterator[None]:
    """Turn RecursaErrors into CliErrors; a not-found error names the database it looked in."""
    from recursa.agent import NotFoundError, RecursaError

    try:
        yield
    except RecursaError as exc:
        message = str(exc)
        if isinstance(exc, NotFoundError) and agent is not None:
            message += (
                f" (database: {agent.database_url}; pass --db or set RECURSA_DB_URL to use another)"
            )
        code = exit_code_for(exc)
        log_failure(exc, code)
        raise CliError(message, code) from exc


def state(ctx: click.Context | None = None) -> CliState:
    ctx = ctx or click.get_current_context()
    obj = ctx.find_object(CliState)
    return obj if obj is not None else CliState()


@contextmanager
def open_agent(
    *,
    model: str | None = None,
    conversation_id: int | None = None,
    **overrides: Any,
) -> Iterator[Agent]:
    """Open the Agent on the chosen database; errors inside the block become CliErrors.

    Without `model`, a conversation keeps the model it was created with.
    The model itself is loaded lazily, only by commands that generate or plan.
    """
    from recursa.agent import Agent

    with translate_errors():
        agent = Agent.open(state().db_url, model, progress=_progress_printer(), **overrides)
    try:
        with translate_errors(agent):
            if conversation_id is not None:
                info = agent.get_conversation(conversation_id)  # unknown id: fail before loading
                if model is None and info.model and info.model != agent.settings.model:
                    agent.settings = agent.settings.merged({"model": info.model})
            yield agent
    finally:
        agent.close()


def _progress_printer() -> Callable[[str, float | None], None] | None:
    """Model-loading progress on stderr, only when a person is watching it."""
    if not sys.stderr.isatty():
        return None

    def report(message: str, fraction: float | None) -> None:
        suffix = f" ({fraction:.0%})" if fraction is not None else ""
        click.echo(f"{message}{suffix}", err=True)

    return report


# --- output -------------------------------------------------------------------------------


def refuse_existing(output: Path, force: bool) -> None:
    """A usage error when `output` exists and --force was not given (checked before any work)."""
    if output.exists() and not force:
        raise CliError(
            f"{output} already exists; pass --force to overwrite it, or choose "
            "another file. Nothing was written.",
            USAGE_EXIT,
        )


def write_whole(output: Path, text: str) -> None:
    """Write `text` to `output` whole or not at all: a temporary file beside it, then a rename.

    A full disk or an interruption never leaves a half-written file (nor spoils an
    existing file that --force was about to replace); the error says nothing was written.
    """
    import os
    import tempfile
    from pathlib import Path

    try:
        fd, temp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent or Path("."))
    except OSError as exc:
        raise CliError(
            f"Cannot write {output}: {exc.strerror or exc}. Nothing was written.", USAGE_EXIT
        ) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)  # mkstemp makes the file private; give it the usual permissions
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, output)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise CliError(
            f"Cannot write {output}: {exc.strerror or exc}. Nothing was written.", USAGE_EXIT
        ) from exc


def to_jsonable(value: Any) -> Any:
    """Pydantic models and dataclasses as plain JSON data (timestamps as ISO-8601)."""
    from dataclasses import asdict, is_dataclass

    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def echo_json(value: Any) -> None:
    """Print one JSON document on stdout."""
    click.echo(json.dumps(to_jsonable(value), ensure_ascii=False, indent=2))


def console() -> Console:
    """A rich console on the current stdout (colour only when it is a terminal).

    Every string it prints passes through `terminal_safe` first: stored titles,
    messages and summaries never reach the terminal with their control characters.
    """
    from rich.console import Console

    class SafeConsole(Console):
        def print(self, *objects: Any, **kwargs: Any) -> None:
            super().print(
                *(terminal_safe(o) if isinstance(o, str) else o for o in objects), **kwargs
            )

    # Piped output is read by other tools, not a window of some width: keep rows unfolded.
    width = None if _isatty(sys.stdout) else PIPED_WIDTH
    return SafeConsole(highlight=False, soft_wrap=False, width=width)


def _isatty(stream: Any) -> bool:
    try:
        return stream is not None and bool(stream.isatty())
    except (ValueError, AttributeError):  # closed, or not a file at all
        return False


def for_terminal(text: str, stream: Any = None) -> str:
    """Generated text for a stream: made terminal-safe when the stream is a terminal.

    A pipe or a file gets the text exactly as stored (it is data there); a
    terminal gets control characters as visible escapes.
    """
    return terminal_safe(text) if _isatty(stream if stream is not None else sys.stdout) else text


def table(*columns: str, title: str | None = None) -> Table:
    from rich.table import Table

    t = Table(title=title, title_justify="left", header_style="bold", show_edge=False)
    for name in columns:
        t.add_column(name, overflow="fold")
    return t


def when(value: datetime | None) -> str:
    """A timestamp for tables: local time to the minute."""
    if value is None:
        return ""
    return value.astimezone().strftime("%Y-%m-%d %H:%M")


def short(text: str | None, width: int = 60) -> str:
    """One line of at most `width` characters."""
    if not text:
        return ""
    line = one_line(" ".join(text.split()))
    return line if len(line) <= width else line[: width - 1] + "…"


def ids(values: Sequence[int]) -> str:
    """Message ids compactly: runs of consecutive ids as ranges."""
    if not values:
        return ""
    out: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ",".join(out)


# --- command groups with aliases -------------------------------------------------------------


class AliasedGroup(click.Group):
    """A group whose commands also answer to short aliases (`c ls` for `conversations list`).

    Aliases are listed in each command's help line, not as extra commands.
    """

    def __init__(self, *args: Any, aliases: Mapping[str, str] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.aliases: dict[str, str] = dict(aliases or {})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd else None), cmd, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.commands[name]
            if cmd.hidden:
                continue
            alias = [a for a, target in self.aliases.items() if target == name]
            help_text = cmd.get_short_help_str(limit=formatter.width - 30)
            label = f"{name} ({', '.join(alias)})" if alias else name
            rows.append((label, help_text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


MAX_ID = 2**63 - 1  # ids are 64-bit integers on both databases


class RecordIdType(click.ParamType):
    """A record id on the command line: a whole number from 1 to 2**63-1 (else exit 2)."""

    name = "id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            if not text.lstrip("+-").isdigit() or len(text) > 40:
                self.fail(
                    f"{short(str(value), 40)!r} is not an id: give a whole number such as 3 "
                    "(`recursa conversations list` shows the ids).",
                    param,
                    ctx,
                )
            number = int(text)
        if not 1 <= number <= MAX_ID:
            self.fail(
                f"{number} is not an id: ids are whole numbers from 1 to {MAX_ID}.", param, ctx
            )
        return number


ID = RecordIdType()


def counts(minimum: int = 0, maximum: int = MAX_ID) -> click.IntRange:
    """A whole-number option bounded so it fits the database and the model (never overflows)."""
    return click.IntRange(min=minimum, max=maximum)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")(f)


def model_option(f: F) -> F:
    return click.option("-m", "--model", default=None, metavar="MODEL", help=MODEL_HELP)(f)


def add_row(t: Table, *cells: object) -> None:
    """Add a row of plain, terminal-safe text (no rich markup: titles may contain brackets)."""
    from rich.text import Text

    t.add_row(*(Text(one_line(c)) for c in cells))
