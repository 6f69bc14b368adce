"""`recursa summarize FILE|-`: a document of any length, summarized recursively by the model."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from recursa.tui.cli.common import (
    USAGE_EXIT,
    CliError,
    echo_json,
    for_terminal,
    json_option,
    model_option,
    open_agent,
)


@click.command("summarize")
@click.argument("source", metavar="FILE|-")
@click.option(
    "-t",
    "--tokens",
    "max_tokens",
    type=click.IntRange(min=16),
    default=256,
    show_default=True,
    help="Target length of the summary, in the model's tokens.",
)
@model_option
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@json_option
def summarize_command(
    source: str, max_tokens: int, model: str | None, quiet: bool, as_json: bool
) -> None:
    """Summarize a text file (or standard input, with -) into at most --tokens tokens.

    The text is cut into chunks that fit the model's context, each chunk is
    summarized, then the summaries are summarized, until one is left. By
    default the summaries keep the text's fact-bearing sentences (names,
    numbers, dates, places, decisions) and the model condenses only what does
    not fit. Progress goes to stderr; --json prints the summary with its chunk
    tree, each node with the character span of the source it covers.
    """
    text = _read(source)

    def progress(message: str, fraction: float | None) -> None:
        if not quiet:
            suffix = f" [{fraction:.0%}]" if fraction is not None else ""
            click.echo(f"{message}{suffix}", err=True)

    with open_agent(model=model) as agent:
        result = agent.summarize_text(text, max_tokens=max_tokens, progress=progress)
    if not quiet:
        click.echo(
            f"{result.source_tokens} tokens summarized into {result.tokens} "
            f"(target {result.max_tokens}) with {result.model}: {result.chunks} chunk(s), "
            f"{result.levels} level(s), {result.calls} model call(s), {result.duration_s:.1f} s",
            err=True,
        )
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
    if as_json:
        echo_json(result.model_dump(mode="json"))
    else:
        click.echo(for_terminal(result.summary))


def _read(source: str) -> str:
    """The text of FILE, or of standard input for '-'; a clear error for anything else."""
    if source == "-":
        if sys.stdin is None or sys.stdin.closed or sys.stdin.isatty():
            raise click.UsageError("Pipe a text into `recursa summarize -`, or name a file.")
        data = sys.stdin.buffer.read()
        name = "standard input"
    else:
        path = Path(source)
        if not path.is_file():
            raise CliError(
                f"No file {source!r}; name a text file, or - for standard input.", USAGE_EXIT
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CliError(f"Cannot read {source!r}: {exc.strerror}.", USAGE_EXIT) from exc
        name = repr(source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CliError(
            f"{name} is not UTF-8 text (byte {exc.start}); convert it first, e.g. "
            "`iconv -f latin1 -t utf-8 FILE | recursa summarize -`.",
            USAGE_EXIT,
        ) from exc
    if not text.strip():
        raise CliError(f"{name} is empty; there is nothing to summarize.", USAGE_EXIT)
    return text
