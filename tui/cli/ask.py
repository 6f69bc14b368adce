"""`recursa ask`: one turn from the shell, with TEXT and/or standard input, streamed to stdout."""

from __future__ import annotations

import sys
from typing import Any

import click
from recursa.tui.cli.common import (
    CliError,
    echo_json,
    json_option,
    model_option,
    open_agent,
    short,
)

INTERRUPTED_EXIT = 130


@click.command("ask")
@click.argument("text", required=False)
@click.option("-c", "--conversation", "conversation_id", type=int, default=None,
              help="Continue this conversation (default: start a new one; its id goes to stderr).")
@model_option
@click.option("-s", "--system", "system_prompt", default=None,
              help="System prompt of the new conversation (with -c: replaces the stored one).")
@click.option("-t", "--title", default=None, help="Title of the new conversation.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None,
              help="Upper bound on the reply's length in tokens.")
@json_option
def ask_command(text: str | None, conversation_id: int | None, model: str | None,
                system_prompt: str | None, title: str | None, max_new_tokens: int | None,
                as_json: bool) -> None:
    """Send one message and print the reply as it is generated.

    The message is TEXT, standard input, or both (`cat notes.txt | recursa ask
    "summarize this"` sends TEXT, a blank line, then the piped text).
    """
    message = _message(text)
    overrides: dict[str, Any] = {}
    if max_new_tokens is not None:
        overrides["max_new_tokens"] = max_new_tokens
    with open_agent(model=model, conversation_id=conversation_id, **overrides) as agent:
        if conversation_id is None:
            conversation_id = agent.create_conversation(
                title=title or short(message, 60), system_prompt=system_prompt
            )
            click.echo(f"conversation {conversation_id}", err=True)
        elif system_prompt is not None:
            agent.set_system_prompt(conversation_id, system_prompt)
        stream = agent.stream(conversation_id, message)
        try:
            for chunk in stream:
                if chunk.event == "text" and not as_json:
                    click.echo(chunk.text, nl=False)
                    sys.stdout.flush()
        except KeyboardInterrupt:
            stream.close()  # the partial reply is stored as interrupted
            click.echo("", err=False)
            raise CliError("Interrupted; the partial reply was stored.", INTERRUPTED_EXIT) from None
        reply = stream.reply
    assert reply is not None
    if as_json:
        echo_json({
            "conversation_id": reply.conversation_id,
            "message_id": reply.message_id,
            "user_message_id": reply.user_message_id,
            "text": reply.text,
            "status": reply.status,
            "model": reply.trace.model if reply.trace else None,
            "trace_id": reply.trace.id if reply.trace else None,
            "usage": reply.usage,
        })
    else:
        click.echo()


def _message(text: str | None) -> str:
    piped = ""
    stdin = sys.stdin
    if not stdin.isatty():
        piped = stdin.read()
    parts = [p for p in (text, piped) if p and p.strip()]
    if not parts:
        raise click.UsageError(
            "Nothing to ask: give TEXT, or pipe text on standard input "
            "(e.g. cat notes.txt | recursa ask \"summarize this\")."
        )
    return "\n\n".join(parts)
