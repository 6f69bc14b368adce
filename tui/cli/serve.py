"""`recursa serve`: the agent and its memory as an OpenAI-compatible HTTP service."""

from __future__ import annotations

from typing import Any

import click
from recursa.tui.cli.common import model_option, open_agent, translate_errors


@click.command("serve")
@click.option(
    "--host",
    default=None,
    metavar="ADDRESS",
    help="Address to listen on (default 127.0.0.1; any other needs an API key).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="TCP port (default 8000; 0 picks a free one).",
)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    metavar="KEY",
    help="A bearer key clients must send (repeatable; also RECURSA_SERVE__API_KEYS).",
)
@click.option(
    "--admin-key",
    "admin_keys",
    multiple=True,
    metavar="KEY",
    help="A key that sees every conversation (repeatable).",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Allow browser calls from this origin (repeatable; default: CORS off).",
)
@click.option(
    "--queue-limit",
    type=click.IntRange(min=0),
    default=None,
    help="Requests that may wait for the model before new ones get 429.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds a request may run before its reply is stopped.",
)
@model_option
def serve_command(
    host: str | None,
    port: int | None,
    api_keys: tuple[str, ...],
    admin_keys: tuple[str, ...],
    cors_origins: tuple[str, ...],
    queue_limit: int | None,
    request_timeout: float | None,
    model: str | None,
) -> None:
    """Serve OpenAI's chat completions and the memory endpoints over HTTP.

    Clients use any OpenAI library with base URL http://HOST:PORT/v1. Settings
    come from the `serve` section (RECURSA_SERVE__*); options here override them.
    """
    from recursa.serve.server import check_bind, log_to_stderr, run

    given: dict[str, Any] = {
        "host": host,
        "port": port,
        "queue_limit": queue_limit,
        "request_timeout": request_timeout,
        "api_keys": list(api_keys) or None,
        "admin_keys": list(admin_keys) or None,
        "cors_origins": list(cors_origins) or None,
    }
    with open_agent(model=model) as agent, translate_errors(agent):
        serve = agent.settings.serve.model_copy(
            update={k: v for k, v in given.items() if v is not None}
        )
        serve = type(serve).model_validate(serve.model_dump())
        check_bind(serve)
        log_to_stderr()

        def announce(url: str) -> None:
            keys = "bearer key required" if (serve.api_keys or serve.admin_keys) else "no key"
            click.echo(f"recursa serve: {agent.model_spec} on {agent.database_url}", err=True)
            click.echo(
                f"recursa serve: listening on {url} ({keys}); OpenAI base URL {url}/v1", err=True
            )

        run(agent, serve, announce=announce)
