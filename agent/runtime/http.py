"""OpenAIRuntime: a model served over the OpenAI-compatible chat-completions HTTP API.

Works with vLLM, llama.cpp's server, Ollama, OpenAI and anything else that
speaks `/v1/chat/completions` with server-sent events. On first use the runtime
asks the server for its context window and its tokenizer
(`recursa.agent.runtime.discovery`); tokens are then counted with the server's
own tokenizer where it has an endpoint for it, else with tiktoken (the offline
`cl100k_base` encoding) scaled by a margin measured against the prompt lengths
the server reports. A server that saw noticeably fewer tokens than were sent
(it silently truncated the prompt) is reported in `Usage.warnings`.

A prompt the server refuses as too long raises `ContextOverflowError` with the
window the server stated; the runtime budgets for that window from then on (and
remembers it for the next session), so the caller can re-plan and retry.

Requests are retried with exponential backoff on connection errors and on HTTP
429/5xx, never on other 4xx, and only before the first byte of the reply has
arrived: a reply is never stitched together from two attempts.

This module holds the requests: a chat reply streamed or whole, and the probe
that tells a cut stream from a refused prompt. Their parts live alongside:
`http_base` (the client, the server's facts, the counter and the window),
`http_retry` (sending with retries), `http_stream` (reading replies and SSE
streams), `http_usage` (the usage and the truncation warning), `http_errors`
and `overflow` (the messages).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Sequence
from typing import Any

import httpx
from recursa.agent.errors import ModelServerError
from recursa.agent.runtime.discovery import GUESSED_CONTEXT_WINDOW
from recursa.agent.runtime.http_base import OpenAIRuntimeBase
from recursa.agent.runtime.http_retry import Cancelled, send_with_retries
from recursa.agent.runtime.http_stream import (
    StreamProgress,
    close_on_cancel,
    iter_chunks,
    json_body,
    parse_message,
    read_deltas,
)
from recursa.agent.runtime.overflow import Overflow, overflow_from_error
from recursa.agent.runtime.protocol import (
    CancelToken,
    ChatMessage,
    Completion,
    GenerationParams,
    TextStream,
    Usage,
)

__all__ = ["DEFAULT_CONTEXT_WINDOW", "LONG_PROMPT_TOKENS", "OpenAIRuntime"]

# The window assumed when neither the setting nor the server says one (shown as a guess).
DEFAULT_CONTEXT_WINDOW = GUESSED_CONTEXT_WINDOW

# A stream that ends before its first token after a prompt of more tokens than this
# may be a refused prompt (llama-cpp-python cuts the stream instead of answering
# 400 when a streamed prompt is too long): the runtime then asks once more, plainly.
LONG_PROMPT_TOKENS = 256


class OpenAIRuntime(OpenAIRuntimeBase):
    """A chat model behind an OpenAI-compatible server.

    `base_url` is the API root that `/chat/completions` hangs off, usually ending
    in `/v1` (e.g. `http://127.0.0.1:8000/v1`). The API key is read from the
    environment variable named by `options.api_key_env` on every request, so it
    is never stored on the object, shown in its repr or logged.
    """

    def __repr__(self) -> str:
        return f"OpenAIRuntime(model={self.model!r}, base_url={self.base_url!r})"

    # -- the Runtime protocol: generating -------------------------------------

    def stream(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams | None = None,
        *,
        cache_key: str | None = None,
        cancel: CancelToken | None = None,
    ) -> TextStream:
        """Stream a reply over SSE. The request is sent when iteration starts.

        `cache_key` is ignored: the server owns its own prefix cache.
        """
        token = cancel or CancelToken()
        gen = self._stream(list(messages), params or GenerationParams(), token)
        return TextStream(gen, token)

    def complete(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams | None = None,
        *,
        cancel: CancelToken | None = None,
    ) -> Completion:
        """Generate a whole reply with one non-streaming request (`stream: false`)."""
        params = params or GenerationParams()
        token = cancel or CancelToken()
        messages = list(messages)
        start = time.perf_counter()
        local_count = self.count_tokens(messages)
        payload = self._payload(messages, params, stream=False)
        try:
            response = self._send(payload, token, local_count)
        except Cancelled:
            return Completion(
                text="", usage=self._usage(local_count, None, "", "cancelled", start, None, params)
            )
        try:
            content = response.read()
        except httpx.TransportError as exc:
            raise self._broken_stream_error(exc, 0) from exc
        finally:
            response.close()
        body = json_body(response, content)
        text, finish = parse_message(body, self.base_url)
        usage = self._usage(local_count, body.get("usage"), text, finish, start, None, params)
        return Completion(text=text, usage=usage)

    # -- requests -------------------------------------------------------------

    def _payload(
        self, messages: list[ChatMessage], params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": stream,
        }
        if stream:
            # Without this the server sends no usage in a stream, and truncation goes unseen.
            payload["stream_options"] = {"include_usage": True}
        if params.seed is not None:
            payload["seed"] = params.seed
        if params.stop:
            payload["stop"] = list(params.stop)
        return payload

    def _send(
        self, payload: dict[str, Any], cancel: CancelToken, local_count: int
    ) -> httpx.Response:
        """POST a chat request with retries (`http_retry`); the response's body is unread."""
        return send_with_retries(
            self._client,
            self._url("/chat/completions"),
            payload,
            cancel,
            options=self.options,
            headers=self._headers,
            refused=lambda overflow: self._overflow_error(overflow, local_count),
            status_error=lambda response, body, attempts, extra: self._status_error(
                response, body, attempts=attempts, extra=extra
            ),
            transport_message=self._transport_message,
        )

    # -- streaming ------------------------------------------------------------

    def _stream(
        self, messages: list[ChatMessage], params: GenerationParams, cancel: CancelToken
    ) -> Generator[str, None, Usage]:
        start = time.perf_counter()
        local_count = self.count_tokens(messages)
        payload = self._payload(messages, params, stream=True)
        try:
            response = self._send(payload, cancel, local_count)
        except Cancelled:
            return self._usage(local_count, None, "", "cancelled", start, None, params)
        progress = StreamProgress(start)
        finished = threading.Event()
        watcher = threading.Thread(
            target=close_on_cancel,
            args=(response, cancel, finished),
            name="recursa-http-cancel",
            daemon=True,
        )
        watcher.start()
        try:
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                # The server ignored stream=true and answered with one JSON body.
                body = json_body(response, response.read())
                text, finish = parse_message(body, self.base_url)
                first = None
                if text:
                    first = time.perf_counter() - start
                    yield text
                return self._usage(
                    local_count, body.get("usage"), text, finish, start, first, params
                )
            chunks = iter_chunks(
                response,
                self.base_url,
                lambda overflow: self._overflow_error(overflow, local_count),
            )
            yield from read_deltas(chunks, cancel, progress)
            if cancel.cancelled:
                progress.finish = "cancelled"
            if not progress.done and progress.finish is None:
                if not progress.parts:
                    self._raise_if_refused(messages, local_count)
                raise ModelServerError(
                    f"The stream from {self.base_url} ended before the reply was complete "
                    f"(no [DONE] and no finish_reason; {len(''.join(progress.parts))} characters "
                    "received). The partial reply was not kept as complete. The server may "
                    "have crashed or a proxy cut the connection; try again and check the "
                    "server's logs."
                )
        except httpx.TransportError as exc:
            if not cancel.cancelled:
                if not progress.parts:
                    self._raise_if_refused(messages, local_count)
                raise self._broken_stream_error(exc, len("".join(progress.parts))) from exc
            # The cancel watcher shut the socket down under a blocked read.
            progress.finish = "cancelled"
        finally:
            finished.set()
            # Closing an unfinished response drops the connection, which tells the
            # server to stop generating (this is how cancellation reaches it).
            response.close()
        text = "".join(progress.parts)
        return self._usage(
            local_count,
            progress.server_usage,
            text,
            progress.finish or "stop",
            start,
            progress.first,
            params,
        )

    # -- refused prompts ------------------------------------------------------

    def _raise_if_refused(self, messages: list[ChatMessage], local_count: int) -> None:
        """After a stream cut before its first token: was the prompt refused as too long?

        llama-cpp-python answers a too-long streamed prompt by ending the stream at
        once, with the reason only in its log. For a long prompt, the same request
        is sent again without streaming and for one token: a server that refuses
        it says why, and its window, in a 400. A short prompt, or one the server
        accepts this time, was cut for another reason (the caller reports it).
        """
        if local_count <= LONG_PROMPT_TOKENS:
            return
        payload = self._payload(messages, GenerationParams(max_new_tokens=1), stream=False)
        response: httpx.Response | None = None
        for _ in range(2):
            try:
                response = self._client.post(
                    self._url("/chat/completions"), json=payload, headers=self._headers()
                )
                break
            except httpx.TransportError:
                # The first try may meet the kept-alive connection the cut stream left
                # dead (the server closed it); the second goes over a fresh one.
                continue
        if response is None:
            # Cut again without a word: a refused prompt, window unknown.
            raise self._overflow_error(
                Overflow(window=None, prompt_tokens=None, said="the stream was cut twice"),
                local_count,
            )
        if response.status_code >= 400:
            overflow = overflow_from_error(response.status_code, response.content)
            if overflow is not None:
                raise self._overflow_error(overflow, local_count)
