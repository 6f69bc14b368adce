"""Fixtures for the HTTP service: a real uvicorn server on 127.0.0.1, and OpenAI clients for it.

`serve_agent(agent, **serve_settings)` starts `recursa.serve.create_app(agent)`
under uvicorn in a thread, on a free port, and returns a `Served` with its
base URL; every server is stopped (gracefully) after the test. `openai_client`
makes the official `openai` client for a server.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest


@dataclass
class Served:
    """A running server: its URL and the uvicorn handle that stops it."""

    url: str
    server: Any
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as recursa.serve.server does
    sock.bind(("127.0.0.1", 0))
    return sock


def wait_healthy(url: str, timeout: float = 30.0) -> None:
    """Until GET /healthz answers 200 (the model may still be loading)."""
    end = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < end:
        try:
            response = httpx.get(url + "/healthz", timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"the server at {url} never became healthy: {last}")


@pytest.fixture
def serve_agent() -> Iterator[Callable[..., Served]]:
    import uvicorn
    from recursa.serve import create_app

    running: list[Served] = []

    def start(agent: Any, **serve: Any) -> Served:
        settings = agent.settings.serve.model_copy(update=serve)
        app = create_app(agent, serve=type(settings).model_validate(settings.model_dump()))
        sock = free_socket()
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=max(1, int(settings.graceful_timeout)),
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        served = Served(f"http://127.0.0.1:{port}", server, thread)
        running.append(served)
        wait_healthy(served.url)
        return served

    yield start
    for served in running:
        served.stop()


@pytest.fixture
def openai_client() -> Callable[..., Any]:
    """The official openai client for a served URL (no retries: a test sees each answer)."""
    import openai

    def make(served: Served, api_key: str = "unused", **kw: Any) -> Any:
        return openai.OpenAI(base_url=served.base_url, api_key=api_key, max_retries=0, **kw)

    return make
