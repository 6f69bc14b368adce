"""A test double of an OpenAI-compatible embeddings server, on 127.0.0.1, backed by a real model.

It serves `POST /v1/embeddings` with the vectors of whatever `embed` function
it is given (the tests give it the real all-MiniLM-L6-v2), so what the HTTP
embedder returns can be compared with the local model's own vectors. It records
each request, and `Behaviour` switches on what a real server may do: require an
API key, fail a few times first, scale its vectors (not normalised), answer the
inputs out of order, or refuse every request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

EmbedFunction = Callable[[Sequence[str]], np.ndarray]


@dataclass
class Behaviour:
    """What the server does; tests change it freely between requests."""

    models: tuple[str, ...] = ("minilm-test",)
    api_key: str | None = None  # when set, other keys (or none) get 401
    fail_times: int = 0  # the first N requests fail with fail_status
    fail_status: int = 503
    always_status: int | None = None  # every request fails with this status
    scale: float = 1.0  # multiply the vectors (a server that does not normalise)
    reverse: bool = False  # list the answers in reverse order (each keeps its index)


@dataclass
class State:
    behaviour: Behaviour
    embed: EmbedFunction
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    failures_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: State


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": "error"}})

    def do_POST(self) -> None:  # noqa: N802
        state = self.server.state
        b = state.behaviour
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        with state.lock:
            state.requests.append(body)
            state.headers.append(dict(self.headers.items()))
            fail = state.failures_sent < b.fail_times
            if fail:
                state.failures_sent += 1
        if self.path != "/v1/embeddings":
            self._error(404, "Not Found")
        elif b.api_key is not None and self.headers.get("Authorization") != f"Bearer {b.api_key}":
            self._error(401, "Incorrect API key provided.")
        elif fail:
            self._error(b.fail_status, "Temporarily overloaded.")
        elif b.always_status is not None:
            self._error(b.always_status, "Refused.")
        elif body.get("model") not in b.models:
            self._error(404, f"The model `{body.get('model')}` does not exist.")
        else:
            inputs = body["input"]
            texts = [inputs] if isinstance(inputs, str) else list(inputs)
            vectors = np.asarray(state.embed(texts), dtype=np.float64) * b.scale
            data = [
                {"object": "embedding", "index": i, "embedding": vector.tolist()}
                for i, vector in enumerate(vectors)
            ]
            if b.reverse:
                data.reverse()
            self._send(200, {"object": "list", "data": data, "model": body["model"]})


@dataclass
class EmbeddingServer:
    """A running server: `base_url` ends in /v1; `state` holds behaviour and records."""

    base_url: str
    state: State

    @property
    def behaviour(self) -> Behaviour:
        return self.state.behaviour


@contextmanager
def serve(embed: EmbedFunction, behaviour: Behaviour | None = None) -> Iterator[EmbeddingServer]:
    """Run the server on a free port of 127.0.0.1 in a thread for the duration."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = State(behaviour or Behaviour(), embed)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield EmbeddingServer(f"http://{host}:{port}/v1", httpd.state)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
