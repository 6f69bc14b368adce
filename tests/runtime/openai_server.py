"""A small real OpenAI-compatible HTTP server for tests, with switchable failure modes.

It speaks `/v1/chat/completions` (SSE streaming with chunked transfer encoding,
and plain JSON) and `/v1/models` on 127.0.0.1, counts prompt tokens with the
same tiktoken accounting as recursa, and records every request. `Behaviour`
turns on the failures the HTTP runtime must handle: a required API key, N
failures before success, a stream cut mid-way, a truncating server, an unknown
model, malformed events.

`Behaviour.flavor` makes it answer like a particular server, for discovery,
tokenization and refusals of prompts longer than `context_window`:

- "plain": no discovery endpoints at all; prompts counted with cl100k; refuses
  an overflow with OpenAI's 400 (`context_length_exceeded`);
- "vllm": `max_model_len` in /v1/models, `POST /tokenize` (prompt or messages);
  refuses prompt + max_tokens over the window with vLLM's 400;
- "llama.cpp": `/props` n_ctx, `/apply-template`, `/tokenize`; refuses with
  llama.cpp's `exceed_context_size_error`;
- "llama-cpp-python": `/extras/tokenize` only, no window anywhere; a streamed
  overflow cuts the stream before any event, a plain one answers 400 with the
  window, as llama-cpp-python's server does;
- "ollama": `/api/show` with the model's context length and `num_ctx`; an
  overflow is silently truncated (the reported prompt is cut to the window).

Every flavor but "plain" counts with `server_tokens`, a tokenizer that splits
words into pairs of characters under a ChatML-like template: it counts about
twice what cl100k counts, as a small-vocabulary model's tokenizer would, so a
budget counted with tiktoken alone overflows it.
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
    flavor: str = "plain"  # plain, vllm, llama.cpp, llama-cpp-python, ollama (see the module)
    context_window: int | None = None  # refuse (or, as Ollama, truncate) longer prompts
    ollama_num_ctx: int | None = None  # the num_ctx line /api/show reports (None: no line)
    # The template writes this system message into a chat that has none (as SmolLM2's does).
    default_system: str | None = None


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
    seen_prompt_tokens: list[int] = field(default_factory=list)  # each chat prompt, its count
    lock: threading.Lock = field(default_factory=threading.Lock)

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        """The prompt's length as this server counts it."""
        if self.behaviour.flavor == "plain":
            return self.counter.count_messages(messages)
        return len(server_tokens(render_chat(messages, self.behaviour.default_system)))


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


_SERVER_TOKEN = re.compile(r"<\|im_(?:start|end)\|>|\w{1,2}|[^\w\s]|\s+")


def server_tokens(text: str) -> list[int]:
    """The flavored servers' tokenizer: chat markers, pairs of word characters, marks, spaces."""
    return [hash(piece) % 50_000 for piece in _SERVER_TOKEN.findall(text)]


def render_chat(messages: list[dict[str, Any]], default_system: str | None = None) -> str:
    """The flavored servers' chat template (ChatML), with the reply's priming."""
    if default_system is not None and not any(m.get("role") == "system" for m in messages):
        messages = [{"role": "system", "content": default_system}, *messages]
    out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return out + "<|im_start|>assistant\n"


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
        b = self.state.behaviour
        if self.path == "/props" and b.flavor == "llama.cpp":
            settings = {"n_ctx": b.context_window or 4096, "params": {"n_predict": -1}}
            self._send_json(200, {"default_generation_settings": settings, "total_slots": 1})
            return
        if self.path != f"{API_PREFIX}/models":
            self._send_text(404, "Not Found")
            return
        if not self._authorized():
            return
        data = [self._model_entry(m) for m in b.models]
        self._send_json(200, {"object": "list", "data": data})

    def _model_entry(self, model: str) -> dict[str, Any]:
        b = self.state.behaviour
        if b.flavor == "vllm":
            window = b.context_window or 4096
            return {"id": model, "object": "model", "owned_by": "vllm", "max_model_len": window}
        if b.flavor == "llama.cpp":
            meta = {"vocab_type": 2, "n_vocab": 50_000, "n_ctx_train": 131_072}
            return {"id": model, "object": "model", "owned_by": "llamacpp", "meta": meta}
        if b.flavor == "llama-cpp-python":
            return {"id": model, "object": "model", "owned_by": "me", "permissions": []}
        if b.flavor == "ollama":
            return {"id": model, "object": "model", "owned_by": "library"}
        return {"id": model, "object": "model", "owned_by": "test"}

    def _extra_post(self, body: Any) -> bool:
        """The flavor's own POST endpoints (tokenize, templates, model info); True if answered."""
        b = self.state.behaviour
        if not isinstance(body, dict):
            return False
        if b.flavor == "vllm" and self.path == "/tokenize":
            if "messages" in body:
                count = self.state.prompt_tokens(body["messages"])
                self._send_json(
                    200,
                    {
                        "count": count,
                        "max_model_len": b.context_window or 4096,
                        "tokens": list(range(count)),
                    },
                )
            else:
                tokens = server_tokens(str(body.get("prompt", "")))
                self._send_json(200, {"count": len(tokens), "tokens": tokens})
            return True
        if b.flavor == "llama.cpp" and self.path == "/tokenize":
            self._send_json(200, {"tokens": server_tokens(str(body.get("content", "")))})
            return True
        if b.flavor == "llama.cpp" and self.path == "/apply-template":
            messages = body.get("messages") or []
            self._send_json(200, {"prompt": render_chat(messages, b.default_system)})
            return True
        if b.flavor == "llama-cpp-python" and self.path == "/extras/tokenize":
            self._send_json(200, {"tokens": server_tokens(str(body.get("input", "")))})
            return True
        if b.flavor == "ollama" and self.path == "/api/show":
            params = f"num_ctx {b.ollama_num_ctx}\n" if b.ollama_num_ctx else ""
            info = {"general.architecture": "llama", "llama.context_length": 131_072}
            self._send_json(200, {"model_info": info, "parameters": params + "stop <|im_end|>"})
            return True
        return False

    def _refuse_overflow(self, body: dict[str, Any], prompt_tokens: int) -> bool:
        """Refuse a prompt longer than the window the way the flavor does; True if refused."""
        b = self.state.behaviour
        window = b.context_window
        if window is None or b.flavor == "ollama":
            return False
        max_tokens = body.get("max_tokens") if isinstance(body.get("max_tokens"), int) else 0
        if b.flavor == "vllm":
            if prompt_tokens + max_tokens <= window:
                return False
            self._send_json(
                400,
                {
                    "object": "error",
                    "message": f"This model's maximum context length is {window} tokens. However, "
                    f"you requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the "
                    f"messages, {max_tokens} in the completion). Please reduce the length of the "
                    "messages or completion.",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                },
            )
            return True
        if prompt_tokens <= window:
            return False
        if b.flavor == "llama.cpp":
            self._send_json(
                400,
                {
                    "error": {
                        "code": 400,
                        "message": f"request ({prompt_tokens} tokens) exceeds the available "
                        f"context size ({window} tokens), try increasing it",
                        "type": "exceed_context_size_error",
                        "n_prompt_tokens": prompt_tokens,
                        "n_ctx": window,
                    }
                },
            )
            return True
        if b.flavor == "llama-cpp-python" and body.get("stream"):
            # Its server starts the event stream, then the model raises: the stream ends
            # with no event at all (the reason goes to the server's log only).
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._write_chunk(b"")
            self.close_connection = True  # its server drops the connection after the error
            return True
        wording = (
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} "
            "in the completion). Please reduce the length of the messages or completion."
            if b.flavor == "llama-cpp-python"
            else f"This model's maximum context length is {window} tokens. However, your "
            f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the "
            "messages."
        )
        self._error(400, wording, "context_length_exceeded")
        return True

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = None
        self._record(body)
        if self._extra_post(body):
            return
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
        seen = self.state.prompt_tokens(body["messages"])
        with self.state.lock:
            self.state.seen_prompt_tokens.append(seen)
        if self._refuse_overflow(body, seen):
            return
        if b.flavor == "ollama" and b.context_window is not None:
            seen = min(seen, b.context_window)  # Ollama cuts the prompt's start silently
        prompt_tokens = int(seen * b.prompt_token_ratio)
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
