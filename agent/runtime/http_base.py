"""The state of an `OpenAIRuntime`: its client, what the server is, the counter, the window.

`OpenAIRuntimeBase` holds what every request of the runtime shares: the HTTP
client and the headers that carry the API key, the server's facts (discovered
on first use, merged with what an earlier session kept), the token counter
chosen from them, the context window and where it comes from, and the
bookkeeping that replies feed back: a window a refusal states
(`_overflow_error`) and tiktoken's measured margin (`_usage`). The requests
themselves (chat, streams, the probe of a cut stream) are `OpenAIRuntime`'s,
in `recursa.agent.runtime.http`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import httpx
from recursa.agent.errors import ContextOverflowError, ModelServerError
from recursa.agent.runtime.discovery import (
    ServerFacts,
    discover,
    is_openai_api,
    load_facts,
    save_facts,
)
from recursa.agent.runtime.http_errors import (
    broken_stream_error,
    status_error,
    transport_message,
)
from recursa.agent.runtime.http_stream import json_body
from recursa.agent.runtime.http_usage import build_usage
from recursa.agent.runtime.options import RuntimeOptions
from recursa.agent.runtime.overflow import Overflow, overflow_error
from recursa.agent.runtime.protocol import ChatMessage, FinishReason, GenerationParams, Usage
from recursa.agent.runtime.remote_count import (
    DEFAULT_SCALE,
    MarginCounter,
    ServerCounter,
    scale_for,
)
from recursa.memory.tokens import TokenCounter

__all__ = ["OpenAIRuntimeBase"]


class OpenAIRuntimeBase:
    """A model server's client, facts, token counter and context window (see `OpenAIRuntime`)."""

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
        body = json_body(response, response.content)
        return [str(item.get("id")) for item in body.get("data", []) if isinstance(item, dict)]

    # -- requests -------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream"}
        key = os.environ.get(self.options.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _overflow_error(self, overflow: Overflow, local_count: int) -> ContextOverflowError:
        """Record the window a refusal states and say it, with the setting to change."""
        set_by_user = self.options.context_window
        window = overflow.window
        if window is not None and not set_by_user:
            facts = self.facts
            if facts.stated_window is None or window < facts.stated_window:
                facts.stated_window = window
                save_facts(facts)
        elif not set_by_user and local_count < self.context_window:
            self._estimated_window = max(64, local_count)
        return overflow_error(
            overflow, base_url=self.base_url, local_count=local_count, window_setting=set_by_user
        )

    # -- usage ----------------------------------------------------------------

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
        return build_usage(
            local_count,
            server,
            text,
            finish,
            start,
            first,
            params,
            counter=self.counter,
            measure=self._measure_margin,
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

    # -- error messages (`http_errors`) ---------------------------------------

    def _transport_message(self, exc: httpx.TransportError, retries: int = 0) -> str:
        return transport_message(self.base_url, self.options.timeout_s, exc, retries)

    def _status_error(
        self,
        response: httpx.Response,
        content: bytes,
        *,
        endpoint: str = "/chat/completions",
        attempts: int = 1,
        extra: str = "",
    ) -> ModelServerError:
        return status_error(
            response,
            content,
            base_url=self.base_url,
            model=self.model,
            api_key_env=self.options.api_key_env,
            models_hint=self._available_models_hint,
            endpoint=endpoint,
            attempts=attempts,
            extra=extra,
        )

    def _broken_stream_error(self, exc: httpx.TransportError, received: int) -> ModelServerError:
        return broken_stream_error(self.base_url, self.options.timeout_s, exc, received)

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
