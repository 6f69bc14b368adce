"""A scripted model: replies come from a queue or a function, and every call is recorded.

It is a test double for the dialogue logic and the UIs, named as what it is. It
counts tokens with a small deterministic word tokenizer and a ChatML-like
template overhead, so budgets behave like a real model's without loading one.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field

from recursa.agent.runtime.protocol import (
    CancelToken,
    ChatMessage,
    GenerationParams,
    TextStream,
    Usage,
)

_TOKEN = re.compile(r"\w+|[^\w\s]|\s+")

# Template overhead, shaped like ChatML: "<|im_start|>role\n" ... "<|im_end|>\n".
PER_MESSAGE_OVERHEAD = 4
GENERATION_PROMPT = 3

Reply = str | Exception | Callable[[Sequence[ChatMessage]], str]


def word_tokens(text: str) -> list[str]:
    """Split text into word, punctuation and whitespace-run tokens (lossless)."""
    return _TOKEN.findall(text)


@dataclass
class ScriptedCall:
    """One recorded call to `stream`."""

    messages: list[ChatMessage]
    params: GenerationParams
    cache_key: str | None


@dataclass
class ScriptedRuntime:
    """A model whose replies are scripted.

    `replies` is consumed in order; each item is the reply text, an exception to
    raise mid-stream (after the first chunk), or a function of the messages.
    When the queue is empty, `default` answers (a function or a fixed string).
    `chunk_delay_s` slows streaming so tests can cancel or interact mid-reply.
    """

    replies: Iterable[Reply] = ()
    default: Reply | None = "OK."
    name: str = "scripted"
    context_window: int = 4096
    chunk_delay_s: float = 0.0
    calls: list[ScriptedCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: deque[Reply] = deque(self.replies)
        self._lock = threading.Lock()

    @property
    def tokenizer_id(self) -> str:
        return "scripted-words-v1"

    def push(self, *replies: Reply) -> None:
        """Append replies to the script."""
        with self._lock:
            self._queue.extend(replies)

    def count_text(self, text: str) -> int:
        return len(word_tokens(text))

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        body = sum(PER_MESSAGE_OVERHEAD + self.count_text(m["content"]) for m in messages)
        return body + GENERATION_PROMPT

    def stream(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams | None = None,
        *,
        cache_key: str | None = None,
        cancel: CancelToken | None = None,
    ) -> TextStream:
        params = params or GenerationParams()
        token = cancel or CancelToken()
        with self._lock:
            self.calls.append(ScriptedCall(list(messages), params, cache_key))
            reply = self._queue.popleft() if self._queue else self.default
        if reply is None:
            raise RuntimeError("ScriptedRuntime ran out of replies and has no default")
        return TextStream(self._generate(list(messages), reply, params, token), token)

    def _generate(
        self,
        messages: list[ChatMessage],
        reply: Reply,
        params: GenerationParams,
        cancel: CancelToken,
    ) -> Generator[str, None, Usage]:
        start = time.perf_counter()
        prompt_tokens = self.count_tokens(messages)
        text = reply(messages) if callable(reply) else reply
        chunks: list[str | Exception] = (
            [reply] if isinstance(reply, Exception) else list(word_tokens(str(text)))
        )
        emitted: list[str] = []
        finish: str = "eos"
        first: float | None = None
        for index, chunk in enumerate(chunks):
            if isinstance(chunk, Exception):
                if index == 0 and not emitted:
                    # Emit one chunk first so callers see a failure *mid*-stream.
                    yield "…"
                raise chunk
            if cancel.cancelled:
                finish = "cancelled"
                break
            if len(emitted) >= params.max_new_tokens:
                finish = "length"
                break
            candidate = "".join(emitted) + chunk
            if any(s and s in candidate for s in params.stop):
                finish = "stop"
                break
            if self.chunk_delay_s:
                time.sleep(self.chunk_delay_s)
            if first is None:
                first = time.perf_counter() - start
            emitted.append(chunk)
            yield chunk
        total = time.perf_counter() - start
        decode_time = total - (first or 0.0)
        return Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=len(emitted),
            prefill_tokens=prompt_tokens,
            time_to_first_token_s=first,
            decode_tokens_per_s=(len(emitted) / decode_time) if decode_time > 0 else None,
            total_s=total,
            finish_reason=finish,  # type: ignore[arg-type]
        )

    def close(self) -> None:
        return None
