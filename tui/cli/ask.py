"""`recursa ask`: one turn from the shell, with TEXT and/or standard input, streamed to stdout."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from recursa.tui.cli.common import (
    ID,
    CliError,
    counts,
    echo_json,
    for_terminal,
    json_option,
    model_option,
    open_agent,
)

if TYPE_CHECKING:
    from recursa.agent.agent import Reply, ReplyStream

INTERRUPTED_EXIT = 130


@click.command("ask")
@click.argument("text", required=False)
@click.option(
    "-c",
    "--conversation",
    "conversation_id",
    type=ID,
    default=None,
    help="Continue this conversation (default: start a new one; its id goes to stderr).",
)
@model_option
@click.option(
    "-s",
    "--system",
    "system_prompt",
    default=None,
    help="System prompt of the new conversation (with -c: replaces the stored one).",
)
@click.option("-t", "--title", default=None, help="Title of the new conversation.")
@click.option(
    "--max-new-tokens",
    type=counts(1, 1_000_000),
    default=None,
    help="Upper bound on the reply's length in tokens.",
)
@json_option
def ask_command(
    text: str | None,
    conversation_id: int | None,
    model: str | None,
    system_prompt: str | None,
    title: str | None,
    max_new_tokens: int | None,
    as_json: bool,
) -> None:
    """Send one message and print the reply as it is generated.

    The message is TEXT, standard input, or both (`cat notes.txt | recursa ask
    "summarize this"` sends TEXT, a blank line, then the piped text).
    """
    if title is not None and conversation_id is not None:
        raise click.UsageError(
            "--title names a new conversation; to retitle one, use "
            "`recursa conversations rename ID TITLE`."
        )
    message = _message(text)
    overrides: dict[str, Any] = {}
    if max_new_tokens is not None:
        overrides["max_new_tokens"] = max_new_tokens
    outcome = _Outcome(conversation_id)
    try:
        reply = _ask(
            message,
            outcome,
            model=model,
            system_prompt=system_prompt,
            title=title,
            overrides=overrides,
            as_json=as_json,
        )
    except CliError as exc:
        raise _failed(exc, outcome, as_json=as_json) from exc
    if as_json:
        echo_json(
            {
                "conversation_id": reply.conversation_id,
                "message_id": reply.message_id,
                "user_message_id": reply.user_message_id,
                "text": reply.text,
                "status": reply.status,
                "model": reply.trace.model if reply.trace else None,
                "trace_id": reply.trace.id if reply.trace else None,
                "usage": reply.usage,
            }
        )
    else:
        click.echo()


@dataclass
class _Outcome:
    """What a failed `ask` left behind, for its error message."""

    conversation_id: int | None
    created: bool = False  # a new conversation was created
    message_stored: bool = False  # the user message was committed


def _ask(
    message: str,
    outcome: _Outcome,
    *,
    model: str | None,
    system_prompt: str | None,
    title: str | None,
    overrides: dict[str, Any],
    as_json: bool,
) -> Reply:
    """Check every input, then create the conversation and run the turn."""
    conversation_id = outcome.conversation_id
    with open_agent(model=model, conversation_id=conversation_id, **overrides) as agent:
        title = title if conversation_id is not None or title is not None else _title(message)
        # Validate first, write second: message, title, system prompt, settings, the
        # model (loaded now) and the budget are all checked before anything is stored.
        agent.check_turn(
            message, conversation_id=conversation_id, system_prompt=system_prompt, title=title
        )
        if conversation_id is None:
            conversation_id = agent.create_conversation(title=title, system_prompt=system_prompt)
            outcome.conversation_id, outcome.created = conversation_id, True
            click.echo(f"conversation {conversation_id}", err=True)
        elif system_prompt is not None:
            agent.set_system_prompt(conversation_id, system_prompt)
        stream = agent.stream(conversation_id, message)
        outcome.message_stored = True
        interrupted = _drain(stream, echo=not as_json)
        reply = stream.reply
        if interrupted:
            click.echo()
            raise CliError("Interrupted; the partial reply was stored.", INTERRUPTED_EXIT)
    assert reply is not None
    return reply


def _failed(exc: CliError, outcome: _Outcome, *, as_json: bool) -> CliError:
    """The error, saying what was stored; with --json, also a JSON error object on stdout."""
    message = exc.message.rstrip()
    if outcome.message_stored:
        stored = f"Your message is stored in conversation {outcome.conversation_id}."
    elif outcome.created:
        stored = (
            f"Conversation {outcome.conversation_id} was created, but your message was not stored."
        )
    else:
        stored = "Nothing was stored."
    if "stored" not in message:
        message = f"{message} {stored}"
    if as_json:
        echo_json(
            {
                "error": message,
                "exit_code": exc.exit_code,
                "conversation_id": outcome.conversation_id,
                "message_stored": outcome.message_stored,
            }
        )
    return CliError(message, exc.exit_code)


def _title(message: str) -> str:
    """A new conversation's title: the message's first 60 characters on one line."""
    line = " ".join(message.split())
    return line if len(line) <= 60 else line[:59] + "…"


def _drain(stream: ReplyStream, *, echo: bool) -> bool:
    """Print the stream's text as it comes; True when Ctrl-C stopped it.

    The stream is read in a worker thread so that Ctrl-C lands in this thread,
    never inside the turn: the turn then sees a cancel, and stores the partial
    reply as interrupted before it ends.
    """
    failure: list[BaseException] = []
    finished = threading.Event()

    def pump() -> None:
        try:
            for chunk in stream:
                if chunk.event == "text" and echo:
                    click.echo(for_terminal(chunk.text), nl=False)
                    sys.stdout.flush()
        except BaseException as exc:  # re-raised in the main thread below
            failure.append(exc)
        finally:
            finished.set()

    worker = threading.Thread(target=pump, name="recursa-ask", daemon=True)
    worker.start()
    interrupted = False
    # Wait on an Event, not Thread.join: a join interrupted by Ctrl-C can make
    # is_alive() report False while the thread still runs (seen on CPython 3.11).
    while not finished.is_set():
        try:
            finished.wait(0.1)
        except KeyboardInterrupt:
            interrupted = True
            stream.cancel()  # a second Ctrl-C while the reply is being stored is ignored
    worker.join()
    if failure:
        raise failure[0]
    return interrupted


def _message(text: str | None) -> str:
    piped = ""
    stdin = sys.stdin
    # A closed stdin (`recursa ask <&-`) is None or a closed file: there is nothing piped.
    if stdin is not None and not stdin.closed and not stdin.isatty():
        try:
            piped = stdin.read()
        except UnicodeDecodeError as exc:
            raise click.UsageError(
                f"Standard input is not UTF-8 text (byte {exc.start}); pipe UTF-8 text."
            ) from exc
    parts = [p for p in (text, piped) if p and p.strip()]
    if not parts:
        raise click.UsageError(
            "Nothing to ask: give TEXT, or pipe text on standard input "
            '(e.g. cat notes.txt | recursa ask "summarize this").'
        )
    return "\n\n".join(parts)
