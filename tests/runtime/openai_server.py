"""A small real OpenAI-compatible HTTP server for tests, with switchable failure modes.

It speaks `/v1/chat/completions` (SSE streaming with chunked transfer encoding,
and plain JSON) and `/v1/models` on 127.0.0.1, counts prompt tokens with the
same tiktoken accounting as recursa, and records every request. `Behaviour`
turns on the failures the HTTP runtime must handle: a required API key, N
failures before success, a stream cut mid-way, a truncating server, an unknown
model, malformed events.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from recursa.memory.tokens import TiktokenCounter

API_PREFIX = "/v1"
STALL_S = 30.0  # how long a stalled stream stays silent before the server gives up


@dataclass
class Behaviour:
    """What the server does; tests mutate it freely between requests."""

    models: tuple[str, ...] = ("test-model",)
    reply: str = "Hello from the test server, one word at a time."
    api_key: str | None = None  # when set, other keys (or none) get 401
    fail_times: int = 0  # the first N chat requests fail with fail_status
    fail_status: int = 500
    retry_after: str | None = None  # Retry-After header sent with those failures
    always_status: int | None = None  # every chat request fails with this status
    always_message: str = "Bad request."
    cut_after_chunks: int | None = None  # drop the connection mid-stream
    omit_done: bool = False  # end the stream cleanly but with no finish_reason/[DONE]
    malformed_after_chunks: int | None = None  # send a non-JSON event
    error_event_after_chunks: int | None = None  # send an OpenAI error object mid-stream
    prompt_token_ratio: float = 1.0  # report this share of the prompt tokens (truncation)
    ignore_stream: bool = False  # answer JSON even when a stream was asked for
    reject_stream_options: bool = False  # 400 on the stream_options field
    chunk_delay_s: float = 0.0  # pause between streamed chunks
    stall_after_chunks: int | None = None  # go silent (until the client leaves or STALL_S)
    omit_usage: bool = False  # never report usage
    cached_tokens: int | None = None  # report prompt_tokens_details.cached_tokens


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class ServerState:
    behaviour: Behaviour
    counter: TiktokenCounter = field(default_factory=TiktokenCounter)
    requests: list[Recorded] = field(default_factory=list)
    failures_sent: int = 0
    disconnected: threading.Event = field(default_factory=threading.Event)
    chunks_sent_before_disconnect: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]


class OpenAIServer:
    """A running server: `base_url` ends in /v1; `state` holds behaviour and records."""

    def __init__(self, httpd: ThreadingHTTPServer, state: ServerState) -> None:
        self._httpd = httpd
        self.state = state
        host, port = httpd.server_address[:2]
        self.root_url = f"http://{host}:{port}"
        self.base_url = f"{self.root_url}{API_PREFIX}"

    @property
    def behaviour(self) -> Behaviour:
        return self.state.behaviour


def _words(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None  # keep test output clean

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            # A client that drops a kept-alive connection (cancellation tests do) has
            # nothing left to be answered.
            self.close_connection = True

    # -- plumbing -------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        return self.server.state

    def _record(self, body: dict[str, Any] | None) -> None:
        with self.state.lock:
            self.state.requests.append(
                Recorded(self.command, self.path, dict(self.headers.items()), body)
            )

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        self._send_json(status, {"error": {"message": message, "type": "error", "code": code}})

    def _authorized(self) -> bool:
        key = self.state.behaviour.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._error(401, "Incorrect API key provided.", "invalid_api_key")
        return False

    # -- routes ---------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        self._record(None)
        if self.path != f"{API_PREFIX}/models":
            self._send_text(404, "Not Found")
            return
        if not self._authorized():
            return
        data = [
            {"id": m, "object": "model", "owned_by": "test"} for m in self.state.behaviour.models
        ]
        self._send_json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = None
        self._record(body)
        if self.path != f"{API_PREFIX}/chat/completions":
            self._send_text(404, "Not Found")
            return
        if not self._authorized():
            return
        b = self.state.behaviour
        if not isinstance(body, dict):
            self._error(400, "Body is not JSON.")
            return
        with self.state.lock:
            fail = self.state.failures_sent < b.fail_times
            if fail:
                self.state.failures_sent += 1
        if fail:
            headers = {"Retry-After": b.retry_after} if b.retry_after is not None else None
            self._send_json(
                b.fail_status, {"error": {"message": "Temporary failure."}}, headers=headers
            )
            return
        if b.always_status is not None:
            self._error(b.always_status, b.always_message)
            return
        if b.reject_stream_options and "stream_options" in body:
            self._error(400, "Unrecognized request argument supplied: stream_options")
            return
        if body.get("model") not in b.models:
            # vLLM's shape: the message at the top level, the code a number.
            self._send_json(
                404,
                {
                    "object": "error",
                    "message": f"The model `{body.get('model')}` does not exist.",
                    "type": "NotFoundError",
                    "code": 404,
                },
            )
            return
        self._chat(body)

    # -- chat -----------------------------------------------------------------

    def _chat(self, body: dict[str, Any]) -> None:
        b = self.state.behaviour
        words = _words(b.reply)
        finish = "stop"
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and len(words) > max_tokens:
            words, finish = words[:max_tokens], "length"
        for stop in body.get("stop") or []:
            text = "".join(words)
            if stop in text:
                words, finish = _words(text[: text.index(stop)]), "stop"
        prompt_tokens = int(
            self.state.counter.count_messages(body["messages"]) * b.prompt_token_ratio
        )
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        }
        if b.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": b.cached_tokens}
        if not body.get("stream") or b.ignore_stream:
            reply: dict[str, Any] = {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(words)},
                        "finish_reason": finish,
                    }
                ],
            }
            if not b.omit_usage:
                reply["usage"] = usage
            self._send_json(200, reply)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self._stream(body["model"], words, finish, usage if include_usage else None)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, payload: Any) -> bytes:
        return f"data: {json.dumps(payload)}\n\n".encode()

    def _stream(
        self, model: str, words: list[str], finish: str, usage: dict[str, Any] | None
    ) -> None:
        b = self.state.behaviour
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(delta: dict[str, str], finish_reason: str | None) -> bytes:
            return self._event(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                }
            )

        sent = 0
        try:
            self._write_chunk(b": keep-alive comment\n\n" + chunk({"role": "assistant"}, None))
            for word in words:
                if b.cut_after_chunks is not None and sent >= b.cut_after_chunks:
                    # Drop the connection without the terminating chunk: a crash mid-reply.
                    self.close_connection = True
                    return
                if b.malformed_after_chunks is not None and sent >= b.malformed_after_chunks:
                    self._write_chunk(b'data: {"choices": [{"delta": \n\n')
                    self._write_chunk(b"")
                    return
                if b.error_event_after_chunks is not None and sent >= b.error_event_after_chunks:
                    self._write_chunk(
                        self._event({"error": {"message": "Out of memory.", "code": 500}})
                    )
                    self._write_chunk(b"")
                    return
                if b.stall_after_chunks is not None and sent >= b.stall_after_chunks:
                    self._stall(sent)
                    return
                if b.chunk_delay_s:
                    time.sleep(b.chunk_delay_s)
                self._write_chunk(chunk({"content": word}, None))
                sent += 1
            if b.omit_done:
                self._write_chunk(b"")
                return
            self._write_chunk(chunk({}, finish))
            if usage is not None and not b.omit_usage:
                self._write_chunk(
                    self._event({"id": "chatcmpl-test", "choices": [], "usage": usage})
                )
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            self.state.chunks_sent_before_disconnect = sent
            self.state.disconnected.set()
            self.close_connection = True

    def _stall(self, sent: int) -> None:
        """Send nothing more, like a server stuck in a long prefill, until the client leaves."""
        deadline = time.monotonic() + STALL_S
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable and self.connection.recv(1, socket.MSG_PEEK) == b"":
                self.state.chunks_sent_before_disconnect = sent
                self.state.disconnected.set()
                break
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


@contextmanager
def serve(behaviour: Behaviour | None = None) -> Iterator[OpenAIServer]:
    """Run the server on a free port of 127.0.0.1 in a thread for the duration."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState(behaviour or Behaviour())
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield OpenAIServer(httpd, httpd.state)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
