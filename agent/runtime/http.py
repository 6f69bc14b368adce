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
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import socket
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import httpx
from recursa.agent.errors import ContextOverflowError, ModelServerError
from recursa.agent.runtime.discovery import (
    GUESSED_CONTEXT_WINDOW,
    ServerFacts,
    discover,
    is_openai_api,
    load_facts,
    save_facts,
)
from recursa.agent.runtime.options import RuntimeOptions
from recursa.agent.runtime.overflow import Overflow, overflow_from_error
from recursa.agent.runtime.protocol import (
    CancelToken,
    ChatMessage,
    Completion,
    FinishReason,
    GenerationParams,
    TextStream,
    Usage,
)
from recursa.agent.runtime.remote_count import (
    DEFAULT_SCALE,
    MarginCounter,
    ServerCounter,
    scale_for,
)
from recursa.agent.runtime.sse import iter_sse_events
from recursa.memory.tokens import TokenCounter

# The window assumed when neither the setting nor the server says one (shown as a guess).
DEFAULT_CONTEXT_WINDOW = GUESSED_CONTEXT_WINDOW

# A stream that ends before its first token after a prompt of more tokens than this
# may be a refused prompt (llama-cpp-python cuts the stream instead of answering
# 400 when a streamed prompt is too long): the runtime then asks once more, plainly.
LONG_PROMPT_TOKENS = 256
# tiktoken's undercount is measured only on prompts at least this long.
MEASURE_MIN_TOKENS = 64

# A server that counts fewer than this share of the tokens recursa counted most
# likely cut the prompt. The margin absorbs the honest difference between
# cl100k and the served model's own tokenizer.
TRUNCATION_RATIO = 0.9

# 408 (the server timed out reading the request) and 429 (rate limited) are the
# only 4xx worth repeating; every other 4xx would fail again the same way.
RETRYABLE_4XX = frozenset({408, 429})

# How long a retry wait sleeps between checks of the cancel token.
_CANCEL_POLL_S = 0.05

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "stop",
    "tool_calls": "stop",
    "function_call": "stop",
}


class _Cancelled(Exception):
    """Raised inside the runtime when the cancel token fires before a reply started."""


class OpenAIRuntime:
    """A chat model behind an OpenAI-compatible server.

    `base_url` is the API root that `/chat/completions` hangs off, usually ending
    in `/v1` (e.g. `http://127.0.0.1:8000/v1`). The API key is read from the
    environment variable named by `options.api_key_env` on every request, so it
    is never stored on the object, shown in its repr or logged.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        options: RuntimeOptions | None = None,
        name: str | None = None,
        counter: TokenCounter | None = None,
    ) -> None:
        if not model:
            raise ModelServerError("An OpenAI model name is required, e.g. 'gpt-4o-mini'.")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.options = options or RuntimeOptions()
        self._name = name or f"openai:{model}@{self.base_url}"
        # A counter given by the caller is used as is; otherwise one is chosen on
        # first use, from what the server says about its tokenizer.
        self._counter: TokenCounter | None = counter
        self._fixed_counter = counter is not None
        self._facts: ServerFacts | None = None
        # Set when a server refused a prompt without saying its window: this session
        # then budgets below the refused prompt (never kept for the next one).
        self._estimated_window: int | None = None
        self._ready = threading.Lock()
        timeout = httpx.Timeout(self.options.timeout_s, connect=min(self.options.timeout_s, 10.0))
        self._client = httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"OpenAIRuntime(model={self.model!r}, base_url={self.base_url!r})"

    # -- the Runtime protocol -------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        if self.options.context_window:
            return self.options.context_window
        window = self.facts.effective_window()[0]
        if self._estimated_window is not None and self._estimated_window < window:
            return self._estimated_window
        return window

    @property
    def window_source(self) -> str:
        """Where the context window comes from, in words (a setting, the server, a guess)."""
        if self.options.context_window:
            return "the runtime.context_window setting"
        if self._estimated_window is not None and self.context_window == self._estimated_window:
            return "an estimate: the server refused a longer prompt without saying its window"
        return self.facts.effective_window()[1]

    @property
    def window_is_guess(self) -> bool:
        """True when nothing said the window: it is a conservative default."""
        return not self.options.context_window and self.facts.effective_window()[2]

    @property
    def tokenizer_id(self) -> str:
        return self.counter.tokenizer_id

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self.counter.count_messages(messages)

    def count_text(self, text: str) -> int:
        return self.counter.count_text(text)

    def count_batch(self, prompts: Sequence[Sequence[ChatMessage]]) -> list[int]:
        """The counts of many prompts at once (one round of parallel requests to the server)."""
        counter = self.counter
        batch = getattr(counter, "count_batch", None)
        if batch is not None:
            return list(batch(prompts))
        return [counter.count_messages(p) for p in prompts]

    # -- what the server is ---------------------------------------------------

    @property
    def facts(self) -> ServerFacts:
        """What is known about the server and model (discovered on first use)."""
        self._prepare()
        assert self._facts is not None
        return self._facts

    @property
    def counter(self) -> TokenCounter:
        self._prepare()
        assert self._counter is not None
        return self._counter

    def _prepare(self) -> None:
        """Discover the server once: its window and tokenizer, falling back on what was kept."""
        if self._facts is not None and self._counter is not None:
            return
        with self._ready:
            if self._facts is not None and self._counter is not None:
                return
            kept = load_facts(self.base_url, self.model)
            found = discover(self._client, self.base_url, self.model, self._headers())
            if found is None:
                facts = kept or ServerFacts(base_url=self.base_url, model=self.model)
                if is_openai_api(self.base_url):
                    facts.kind = "openai"
            else:
                facts = found
                if kept is not None:
                    # A window the server reports now is current; one stated in an
                    # earlier refusal only counts while nothing reports one.
                    if facts.window is None:
                        facts.stated_window = kept.stated_window
                    facts.count_scale = kept.count_scale
                    if (
                        kept.framing is not None
                        and kept.tokenizer_fingerprint == facts.tokenizer_fingerprint
                    ):
                        facts.framing = kept.framing
                        facts.implicit_system = kept.implicit_system
            counter = self._counter
            if counter is None:
                if facts.tokenize is not None and found is not None:
                    counter = ServerCounter(self._client, facts, self._headers)
                else:
                    default = 1.0 if facts.kind == "openai" else DEFAULT_SCALE
                    counter = MarginCounter(facts.count_scale or default)
            save_facts(facts)
            self._facts, self._counter = facts, counter

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
        except _Cancelled:
            return Completion(
                text="", usage=self._usage(local_count, None, "", "cancelled", start, None, params)
            )
        try:
            content = response.read()
        except httpx.TransportError as exc:
            raise self._broken_stream_error(exc, 0) from exc
        finally:
            response.close()
        body = self._json_body(response, content)
        text, finish = self._parse_message(body)
        usage = self._usage(local_count, body.get("usage"), text, finish, start, None, params)
        return Completion(text=text, usage=usage)

    def close(self) -> None:
        self._client.close()

    # -- extras ---------------------------------------------------------------

    def list_models(self) -> list[str]:
        """Model ids the server offers (GET /models)."""
        try:
            response = self._client.get(self._url("/models"), headers=self._headers())
        except httpx.TransportError as exc:
            raise ModelServerError(self._transport_message(exc)) from exc
        if response.status_code >= 400:
            raise self._status_error(response, response.content, endpoint="/models")
        body = self._json_body(response, response.content)
        return [str(item.get("id")) for item in body.get("data", []) if isinstance(item, dict)]

    # -- request building -----------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream"}
        key = os.environ.get(self.options.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

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

    @staticmethod
    def _unsent_params(params: GenerationParams) -> list[str]:
        """Warnings for parameters the OpenAI API has no field for (they are not sent)."""
        warnings = []
        if params.repetition_penalty != 1.0:
            warnings.append(
                "repetition_penalty is not part of the OpenAI chat API and was not sent; "
                "use the server's own setting instead."
            )
        if params.no_repeat_ngram_size:
            warnings.append(
                "no_repeat_ngram_size is not part of the OpenAI chat API and was not sent."
            )
        return warnings

    # -- sending with retries -------------------------------------------------

    def _send(
        self, payload: dict[str, Any], cancel: CancelToken, local_count: int
    ) -> httpx.Response:
        """POST the request and return a response whose status is < 400, body unread.

        Retries connection errors and 429/5xx with exponential backoff (honouring
        Retry-After up to `max_retry_delay_s`); a refusal of the prompt as too long
        raises ContextOverflowError; other errors raise ModelServerError.
        """
        url = self._url("/chat/completions")
        attempt = 0
        dropped_stream_options = False
        while True:
            if cancel.cancelled:
                raise _Cancelled
            delay: float | None
            try:
                request = self._client.build_request(
                    "POST", url, json=payload, headers=self._headers()
                )
                response = self._client.send(request, stream=True)
            except (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                if attempt >= self.options.max_retries:
                    raise ModelServerError(self._transport_message(exc, attempt)) from exc
                delay = self._backoff(attempt)
            except httpx.TimeoutException as exc:
                # A read timeout waiting for the answer is not retried: the server
                # is alive but slow, and a resend would only add to its load.
                raise ModelServerError(self._transport_message(exc, attempt)) from exc
            else:
                if response.status_code < 400:
                    return response
                body = response.read()
                response.close()
                if (
                    response.status_code == 400
                    and "stream_options" in payload
                    and not dropped_stream_options
                    and b"stream_options" in body
                ):
                    # Some servers reject the field; retry once without usage in the stream.
                    payload = {k: v for k, v in payload.items() if k != "stream_options"}
                    dropped_stream_options = True
                    continue
                if 400 <= response.status_code < 500:
                    overflow = overflow_from_error(response.status_code, body)
                    if overflow is not None:
                        raise self._overflow_error(overflow, local_count)
                retryable = response.status_code >= 500 or response.status_code in RETRYABLE_4XX
                if not retryable or attempt >= self.options.max_retries:
                    raise self._status_error(response, body, attempts=attempt + 1)
                delay = self._retry_after(response)
                if delay is None:
                    delay = self._backoff(attempt)
                elif delay > self.options.max_retry_delay_s:
                    raise self._status_error(
                        response,
                        body,
                        attempts=attempt + 1,
                        extra=f" The server asked to retry after {delay:.0f} s; try again later.",
                    )
            self._sleep(delay, cancel)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return float(
            min(self.options.retry_backoff_s * (2**attempt), self.options.max_retry_delay_s)
        )

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None  # an unparseable header falls back to our own backoff
        return max(0.0, when.timestamp() - time.time())

    @staticmethod
    def _sleep(delay: float, cancel: CancelToken) -> None:
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            if cancel.cancelled:
                raise _Cancelled
            time.sleep(min(left, _CANCEL_POLL_S))

    # -- streaming ------------------------------------------------------------

    def _stream(
        self, messages: list[ChatMessage], params: GenerationParams, cancel: CancelToken
    ) -> Generator[str, None, Usage]:
        start = time.perf_counter()
        local_count = self.count_tokens(messages)
        payload = self._payload(messages, params, stream=True)
        try:
            response = self._send(payload, cancel, local_count)
        except _Cancelled:
            return self._usage(local_count, None, "", "cancelled", start, None, params)
        parts: list[str] = []
        first: float | None = None
        finish: FinishReason | None = None
        server_usage: dict[str, Any] | None = None
        finished = threading.Event()
        watcher = threading.Thread(
            target=_close_on_cancel,
            args=(response, cancel, finished),
            name="recursa-http-cancel",
            daemon=True,
        )
        watcher.start()
        try:
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                # The server ignored stream=true and answered with one JSON body.
                body = self._json_body(response, response.read())
                text, finish = self._parse_message(body)
                if text:
                    first = time.perf_counter() - start
                    yield text
                return self._usage(
                    local_count, body.get("usage"), text, finish, start, first, params
                )
            done = False
            for chunk in self._chunks(response, local_count):
                if cancel.cancelled:
                    finish = "cancelled"
                    break
                if chunk is None:
                    done = True
                    break
                if isinstance(chunk.get("usage"), dict):
                    server_usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta") or {}
                    content = delta.get("content") if isinstance(delta, dict) else None
                    if content:
                        if first is None:
                            first = time.perf_counter() - start
                        parts.append(content)
                        yield content
                    if choice.get("finish_reason"):
                        finish = _FINISH_REASONS.get(str(choice["finish_reason"]), "stop")
                if cancel.cancelled:
                    finish = "cancelled"
                    break
            if cancel.cancelled:
                finish = "cancelled"
            if not done and finish is None:
                if not parts:
                    self._raise_if_refused(messages, local_count)
                raise ModelServerError(
                    f"The stream from {self.base_url} ended before the reply was complete "
                    f"(no [DONE] and no finish_reason; {len(''.join(parts))} characters "
                    "received). The partial reply was not kept as complete. The server may "
                    "have crashed or a proxy cut the connection; try again and check the "
                    "server's logs."
                )
        except httpx.TransportError as exc:
            if not cancel.cancelled:
                if not parts:
                    self._raise_if_refused(messages, local_count)
                raise self._broken_stream_error(exc, len("".join(parts))) from exc
            # The cancel watcher shut the socket down under a blocked read.
            finish = "cancelled"
        finally:
            finished.set()
            # Closing an unfinished response drops the connection, which tells the
            # server to stop generating (this is how cancellation reaches it).
            response.close()
        text = "".join(parts)
        return self._usage(local_count, server_usage, text, finish or "stop", start, first, params)

    def _broken_stream_error(self, exc: httpx.TransportError, received: int) -> ModelServerError:
        if isinstance(exc, httpx.TimeoutException):
            return ModelServerError(
                f"The server at {self.base_url} stopped sending mid-reply for "
                f"{self.options.timeout_s:g} s (after {received} characters). "
                "Check the server, or raise the timeout (RuntimeOptions.timeout_s)."
            )
        return ModelServerError(
            f"The connection to {self.base_url} broke mid-reply after {received} "
            f"characters ({type(exc).__name__}: {exc}). The partial reply was not kept "
            "as complete; try again."
        )

    def _chunks(
        self, response: httpx.Response, local_count: int
    ) -> Iterator[dict[str, Any] | None]:
        """The JSON chunks of an SSE chat stream; None marks `[DONE]`."""
        for event in iter_sse_events(response.iter_lines()):
            data = event.data.strip()
            if data == "[DONE]":
                yield None
                return
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ModelServerError(
                    f"The server at {self.base_url} sent a malformed stream event "
                    f"({exc.msg}): {data[:200]!r}. It may not be OpenAI-compatible; "
                    "check the base URL."
                ) from exc
            if not isinstance(chunk, dict):
                raise ModelServerError(
                    f"The server at {self.base_url} sent a stream event that is not a JSON "
                    f"object: {data[:200]!r}. Check that it is an OpenAI-compatible server."
                )
            if event.event == "error" or "error" in chunk:
                overflow = overflow_from_error(None, data)
                if overflow is not None:
                    raise self._overflow_error(overflow, local_count)
                raise ModelServerError(
                    f"The server at {self.base_url} reported an error mid-stream: "
                    f"{_error_text(chunk) or data[:300]}"
                )
            yield chunk

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

    def _overflow_error(self, overflow: Overflow, local_count: int) -> ContextOverflowError:
        """Record the window a refusal states and say it, with the setting to change."""
        set_by_user = self.options.context_window
        window = overflow.window
        prompt = overflow.prompt_tokens
        if window is not None and not set_by_user:
            facts = self.facts
            if facts.stated_window is None or window < facts.stated_window:
                facts.stated_window = window
                save_facts(facts)
        elif not set_by_user and local_count < self.context_window:
            self._estimated_window = max(64, local_count)
        seen = f"{prompt} tokens by its count" if prompt else f"about {local_count} tokens"
        # The server's words often end without a full stop (llama.cpp's "try
        # increasing it"); what follows this message must not run into them.
        words = overflow.said.rstrip()
        said = f" It said: {words}{'' if words.endswith(('.', '!', '?')) else '.'}" if words else ""
        if window is None:
            head = (
                f"The server at {self.base_url} refused a prompt of {seen} as too long, "
                "without saying its context window."
            )
            fix = (
                "Set runtime.context_window (RECURSA_RUNTIME__CONTEXT_WINDOW) to the "
                "server's real window (vLLM --max-model-len, llama.cpp -c, Ollama num_ctx)."
            )
        else:
            head = (
                f"The server at {self.base_url} refused a prompt of {seen}: its context "
                f"window is {window} tokens."
            )
            if set_by_user:
                fix = (
                    f"runtime.context_window is set to {set_by_user}; set it to {window} or "
                    f"less (RECURSA_RUNTIME__CONTEXT_WINDOW={window}), or unset it to use "
                    "the server's own."
                )
            else:
                fix = (
                    f"recursa now budgets prompts for {window} tokens; to fix it yourself, set "
                    f"runtime.context_window (RECURSA_RUNTIME__CONTEXT_WINDOW) to {window} or less."
                )
        return ContextOverflowError(f"{head} {fix}{said}", window=window, prompt_tokens=prompt)

    # -- responses ------------------------------------------------------------

    def _json_body(self, response: httpx.Response, content: bytes) -> dict[str, Any]:
        try:
            body = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            ctype = response.headers.get("content-type", "?")
            raise ModelServerError(
                f"{response.request.url} answered with {ctype}, not JSON: it does not look "
                "like an OpenAI-compatible API. Check the base URL (it usually ends in /v1)."
            ) from exc
        if not isinstance(body, dict):
            raise ModelServerError(
                f"{response.request.url} answered with JSON that is not an object; "
                "check that it is an OpenAI-compatible API."
            )
        return body

    def _parse_message(self, body: dict[str, Any]) -> tuple[str, FinishReason]:
        try:
            choice = body["choices"][0]
            content = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelServerError(
                f"The reply from {self.base_url} has no choices[0].message: "
                f"{json.dumps(body)[:300]}. Check that it is an OpenAI-compatible server."
            ) from exc
        finish = _FINISH_REASONS.get(str(choice.get("finish_reason") or "stop"), "stop")
        return str(content), finish

    def _usage(
        self,
        local_count: int,
        server: dict[str, Any] | None,
        text: str,
        finish: FinishReason,
        start: float,
        first: float | None,
        params: GenerationParams,
    ) -> Usage:
        total = time.perf_counter() - start
        warnings = self._unsent_params(params)
        server_prompt = _int_or_none((server or {}).get("prompt_tokens"))
        completion = _int_or_none((server or {}).get("completion_tokens"))
        if completion is None:
            completion = self.count_text(text) if text else 0
        details = (server or {}).get("prompt_tokens_details")
        cached = _int_or_none(details.get("cached_tokens")) if isinstance(details, dict) else None
        raw = local_count
        counter = self._counter
        if isinstance(counter, MarginCounter):
            raw = round(local_count / counter.scale)
            # Short prompts say little about a tokenizer, and a truncated one nothing.
            if (
                server_prompt is not None
                and raw >= MEASURE_MIN_TOKENS
                and server_prompt >= TRUNCATION_RATIO * raw
            ):
                self._measure_margin(counter, server_prompt / raw)
        if server_prompt is not None and server_prompt < TRUNCATION_RATIO * raw:
            warnings.append(
                f"Possible silent truncation: the server counted {server_prompt} prompt tokens "
                f"but recursa sent about {raw} (counted with {self.tokenizer_id}). "
                "The server probably cut the prompt to fit its context. Set the context "
                "window to the server's real limit (RuntimeOptions.context_window; vLLM "
                "--max-model-len, llama.cpp -c, Ollama num_ctx) so recursa budgets for it."
            )
        prompt_seen = server_prompt if server_prompt is not None else local_count
        reused = min(cached or 0, prompt_seen)
        decode_time = total - (first or 0.0)
        return Usage(
            prompt_tokens=local_count,
            completion_tokens=completion,
            prefill_tokens=prompt_seen - reused,
            reused_tokens=reused,
            time_to_first_token_s=first,
            decode_tokens_per_s=(completion / decode_time) if first and decode_time > 0 else None,
            total_s=total,
            finish_reason=finish,
            server_prompt_tokens=server_prompt,
            warnings=warnings,
        )

    def _measure_margin(self, counter: MarginCounter, ratio: float) -> None:
        """Size tiktoken's margin to the largest undercount measured so far.

        Before any measurement the margin is a cautious default; the first
        measurement replaces it (it may shrink), later ones only widen it.
        """
        facts = self.facts
        if facts.measured_ratio is not None and ratio <= facts.measured_ratio:
            return
        facts.measured_ratio = ratio
        scale = scale_for(ratio)
        if scale != counter.scale:
            self._counter = MarginCounter(scale)
        facts.count_scale = scale
        save_facts(facts)

    # -- error messages -------------------------------------------------------

    def _transport_message(self, exc: httpx.TransportError, retries: int = 0) -> str:
        tried = f" (tried {retries + 1} times)" if retries else ""
        if isinstance(exc, httpx.ConnectTimeout):
            return (
                f"Timed out connecting to {self.base_url}{tried}. Is the server running at "
                f"{self.base_url}, and is the host reachable from here?"
            )
        if isinstance(exc, httpx.ConnectError):
            return (
                f"Cannot connect to {self.base_url}{tried}: {exc}. Is the server running at "
                f"{self.base_url}? Start it, or fix the URL in the model spec "
                "(openai:<model>@<base-url>)."
            )
        if isinstance(exc, httpx.TimeoutException):
            return (
                f"The server at {self.base_url} did not answer within "
                f"{self.options.timeout_s:g} s. It may be overloaded; raise the timeout "
                "(RuntimeOptions.timeout_s) or check the server."
            )
        return (
            f"The connection to {self.base_url} failed{tried} ({type(exc).__name__}: {exc}). "
            f"Is the server running at {self.base_url}?"
        )

    def _status_error(
        self,
        response: httpx.Response,
        content: bytes,
        *,
        endpoint: str = "/chat/completions",
        attempts: int = 1,
        extra: str = "",
    ) -> ModelServerError:
        status = response.status_code
        detail = _error_text_from_bytes(content)
        said = f" The server said: {detail}" if detail else ""
        tried = f" (after {attempts} attempts)" if attempts > 1 else ""
        url = self._url(endpoint)
        if status in (401, 403):
            env = self.options.api_key_env
            if os.environ.get(env):
                fix = f"Check that the key in the environment variable {env} is valid for it."
            else:
                fix = f"Set the environment variable {env} to your API key."
            return ModelServerError(
                f"The server at {self.base_url} refused the request (HTTP {status}: "
                f"not authorized). {fix}{said}"
            )
        if status == 404:
            if endpoint == "/chat/completions" and _mentions_model(content):
                return ModelServerError(
                    f"The server at {self.base_url} has no model {self.model!r} (HTTP 404)."
                    f"{said} {self._available_models_hint()}"
                )
            return ModelServerError(
                f"No OpenAI-compatible endpoint at {url} (HTTP 404). Check the base URL in "
                "the model spec: it is the API root, which usually ends in /v1, e.g. "
                f"openai:{self.model}@http://127.0.0.1:8000/v1.{said}"
            )
        if status == 429:
            return ModelServerError(
                f"The server at {self.base_url} is rate limiting requests (HTTP 429){tried}."
                f"{extra or ' Wait and try again, or lower the request rate.'}{said}"
            )
        if status >= 500:
            return ModelServerError(
                f"The server at {self.base_url} failed (HTTP {status}){tried}.{extra}{said} "
                "Check the server's logs."
            )
        return ModelServerError(
            f"The server at {self.base_url} rejected the request (HTTP {status}).{said}{extra}"
        )

    def _available_models_hint(self) -> str:
        try:
            models = self.list_models()
        except ModelServerError as exc:
            # Only a hint for the message above; say why it is missing instead.
            return f"(Could not list the server's models: {exc})"
        if not models:
            return "The server lists no models."
        shown = ", ".join(models[:20]) + (" ..." if len(models) > 20 else "")
        return f"Models it serves: {shown}. Use one of them: openai:<model>@{self.base_url}."


def _close_on_cancel(
    response: httpx.Response, cancel: CancelToken, finished: threading.Event
) -> None:
    """Shut the response's socket down as soon as `cancel` fires.

    The reading thread may be blocked waiting for the server's next bytes (a long
    prefill, a stalled server); closing a socket does not wake a blocked read, but
    shutting it down does, so a cancel takes effect at once instead of at the
    next token.
    """
    while not finished.wait(_CANCEL_POLL_S):
        if cancel.cancelled:
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                # OSError: the reader finished and closed it at the same moment.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error_text(body: Any) -> str:
    """The human message inside an OpenAI-style error body ({"error": {"message": ...}})."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                if error.get(key):
                    return str(error[key])[:500]
        elif isinstance(error, str):
            return error[:500]
        if isinstance(body.get("detail"), str):
            return str(body["detail"])[:500]
    return ""


def _error_text_from_bytes(content: bytes) -> str:
    try:
        return _error_text(json.loads(content))
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = content.decode("utf-8", "replace").strip()
        # An HTML error page says nothing useful in one line.
        return "" if text.startswith("<") else text[:300]


def _mentions_model(content: bytes) -> bool:
    """Whether a 404 body blames the model (vLLM, Ollama, OpenAI all say so) rather than the URL."""
    try:
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("code") == "model_not_found":
        return True
    return "model" in _error_text(body).lower()
