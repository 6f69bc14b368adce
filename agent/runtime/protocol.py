"""The model runtime protocol: chat messages, generation parameters, usage, streams.

Every runtime (local transformers, OpenAI-compatible HTTP, the scripted test
double) implements `Runtime`. A runtime's `stream()` returns a `TextStream`:
iterate it for text chunks; after it ends, `usage` holds the figures; `cancel()`
may be called from any thread and leaves the runtime usable.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator, Sequence
from typing import Literal, Protocol, TypedDict, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "eos", "cancelled", "error", "repetition"]


def prefix_cache_key(conversation_id: int, kind: str = "chat") -> str:
    """The `cache_key` under which a runtime may keep a conversation's KV prefix.

    One name per conversation, so each turn (or composition step) reuses the
    prompt prefix its previous one left.
    """
    prefix = "conv" if kind == "chat" else kind
    return f"{prefix}-{conversation_id}"


class ChatMessage(TypedDict):
    """One chat message as it is sent to a model."""

    role: Role
    content: str


class GenerationParams(BaseModel):
    """How to generate. temperature == 0 means greedy (deterministic) decoding."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(256, ge=1, description="Upper bound on generated tokens.")
    temperature: float = Field(0.0, ge=0.0, le=5.0, description="0 is greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    seed: int | None = Field(None, description="Seed for sampling; None picks none.")
    stop: tuple[str, ...] = Field((), description="Generation ends before any of these.")
    repetition_penalty: float = Field(
        1.0, ge=1.0, le=3.0, description="Divides logits of already-seen tokens (1 = off)."
    )
    no_repeat_ngram_size: int = Field(
        0, ge=0, le=16, description="Forbid repeating any n-gram of this size (0 = off)."
    )


class Usage(BaseModel):
    """Figures of one generation, filled in when its stream ends."""

    prompt_tokens: int = Field(description="Tokens in the prompt as the runtime counted it.")
    completion_tokens: int = 0
    prefill_tokens: int = Field(
        0, description="Prompt tokens actually computed (the rest came from a reused KV cache)."
    )
    reused_tokens: int = Field(0, description="Prompt tokens served from a reused KV cache.")
    time_to_first_token_s: float | None = None
    decode_tokens_per_s: float | None = None
    total_s: float = 0.0
    finish_reason: FinishReason = "stop"
    server_prompt_tokens: int | None = Field(
        None, description="usage.prompt_tokens as reported by an HTTP server."
    )
    warnings: list[str] = Field(default_factory=list)


class Completion(BaseModel):
    """A finished generation: the whole text and its usage."""

    text: str
    usage: Usage


class CancelToken:
    """A thread-safe flag that asks a running generation to stop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class TextStream:
    """Iterator of text chunks from one generation, with `usage` once it has ended.

    Wraps a generator that yields chunks and *returns* the `Usage`. Closing the
    stream early (or `cancel()`) lets the runtime's generator clean up in its
    `finally`, so the runtime stays usable.
    """

    def __init__(self, gen: Generator[str, None, Usage], cancel: CancelToken) -> None:
        self._gen = gen
        self._cancel = cancel
        self.usage: Usage | None = None

    @property
    def cancel_token(self) -> CancelToken:
        return self._cancel

    def cancel(self) -> None:
        """Ask the generation to stop; the stream then ends with finish_reason 'cancelled'."""
        self._cancel.cancel()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            return next(self._gen)
        except StopIteration as stop:
            if self.usage is None:
                self.usage = stop.value
            raise

    def close(self) -> None:
        self._gen.close()

    def complete(self) -> Completion:
        """Consume the rest of the stream and return the whole completion."""
        text = "".join(self)
        assert self.usage is not None, "a runtime generator must return its Usage"
        return Completion(text=text, usage=self.usage)


@runtime_checkable
class Runtime(Protocol):
    """What the dialogue manager needs from a model."""

    @property
    def name(self) -> str:
        """The model's spec or name, recorded in traces and summaries."""
        ...

    @property
    def context_window(self) -> int:
        """Tokens the model can attend to, prompt and reply together."""
        ...

    @property
    def tokenizer_id(self) -> str:
        """Identifies the tokenizer and chat template; keys cached token counts."""
        ...

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Exact prompt length of `messages` as sent (template and generation prompt included)."""
        ...

    def count_text(self, text: str) -> int:
        """Tokens of plain text without any template."""
        ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams | None = None,
        *,
        cache_key: str | None = None,
        cancel: CancelToken | None = None,
    ) -> TextStream:
        """Start generating a reply to `messages`.

        `cache_key` names a conversation whose KV cache the runtime may keep and
        reuse across calls (runtimes without a cache ignore it).
        """
        ...

    def close(self) -> None:
        """Release the model and any cache."""
        ...
