"""`run`: serve an Agent over HTTP with uvicorn, after checking that the address is safe.

An address other than a loopback one needs at least one API key: the memory
of every conversation would otherwise be open to the network. Shutdown
(Ctrl-C, SIGTERM) stops taking requests, lets replies in flight finish for
`graceful_timeout` seconds, then stops the rest, which are stored as interrupted.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from recursa.agent.errors import ConfigError, MissingDependencyError
from recursa.serve.security import loopback

if TYPE_CHECKING:
    from recursa.agent import Agent
    from recursa.agent.settings import ServeSettings

__all__ = ["check_bind", "run"]


def check_bind(serve: ServeSettings) -> None:
    """ConfigError when the address is reachable from other machines and no key is set."""
    if not loopback(serve.host) and not (serve.api_keys or serve.admin_keys):
        raise ConfigError(
            f"Listening on {serve.host} opens the service to other machines: set an API key "
            "first (--api-key KEY or RECURSA_SERVE__API_KEYS), or listen on 127.0.0.1."
        )


def run(
    agent: Agent,
    serve: ServeSettings,
    *,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve `agent` until interrupted; `announce` gets the URL once the socket is bound."""
    check_bind(serve)
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError(
            "recursa serve needs FastAPI and uvicorn. Install them with: "
            "pip install 'recursa[serve]'"
        ) from exc
    from recursa.serve.app import create_app

    app = create_app(agent, serve=serve)
    family = socket.AF_INET6 if ":" in serve.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it, a response written in two pieces
    # waits for the client's delayed ACK (about 40 ms a request, measured).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((serve.host, serve.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"Cannot listen on {serve.host}:{serve.port}: {exc.strerror}. Pick another "
            "--port (0 picks a free one) or stop what uses it."
        ) from exc
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,  # recursa.serve.access logs each request, without contents
        timeout_graceful_shutdown=int(serve.graceful_timeout) or None,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    if announce is not None:
        announce(f"http://{shown}:{port}")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def log_to_stderr() -> None:
    """Access and service logs as lines on stderr (what an operator of `recursa serve` reads)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("recursa.serve", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
