"""KV prefix reuse for the local runtime: per-conversation caches and the shared-prefix rule.

A conversation's prompt mostly grows by appending (the summary changes only at
compaction), so the runtime keeps each conversation's KV cache with the token
ids it covers and, on the next turn, prefills only what follows the longest
prefix the new prompt shares with them. `ConversationCaches` keeps a few such
states, least recently used first; `KVState` is the Llama engine's in-place
cache. Importing this module does not import torch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_MAX_CACHED", "CacheState", "ConversationCaches", "KVState", "reuse_prefix"]

DEFAULT_MAX_CACHED = 4
_MIN_CAPACITY = 256


class CacheState(Protocol):
    """What any engine's cache state offers: the ids it covers and a way to forget a tail."""

    ids: list[int]

    def crop(self, length: int) -> None: ...


def reuse_prefix(state: CacheState, prompt: Sequence[int]) -> int:
    """Crop `state` to the longest prefix it shares with `prompt`; return that length.

    At least one prompt token is always left to compute, because its logits
    pick the reply's first token.
    """
    common = 0
    for cached, new in zip(state.ids, prompt, strict=False):
        if cached != new:
            break
        common += 1
    common = min(common, len(prompt) - 1)
    state.crop(common)
    return common


class ConversationCaches:
    """The kept cache states, keyed by conversation, least recently used first.

    A call without a key gets one scratch state, emptied each time, so a
    one-off prompt never evicts a conversation's cache.
    """

    def __init__(self, new_state: Callable[[], Any], max_kept: int = DEFAULT_MAX_CACHED) -> None:
        self._new_state = new_state
        self._max_kept = max(1, max_kept)
        self._states: OrderedDict[str, Any] = OrderedDict()
        self._scratch: Any = None

    def keys(self) -> list[str]:
        """Keys whose cache is kept, least recently used first."""
        return list(self._states)

    def state_for(self, key: str | None) -> Any:
        """The state to generate in: the key's own (made most recent), or the empty scratch."""
        if key is None:
            if self._scratch is None:
                self._scratch = self._new_state()
            self._scratch.crop(0)
            return self._scratch
        state = self._states.pop(key, None)
        if state is None:
            state = self._new_state()
        self._states[key] = state
        while len(self._states) > self._max_kept:
            self._states.popitem(last=False)
        return state

    def peek(self, key: str) -> Any:
        """The key's state without making it most recent (None when none is kept)."""
        return self._states.get(key)

    def forget(self, key: str | None) -> None:
        """Drop one key's state (None: the scratch), e.g. after a failed forward pass."""
        if key is None:
            self._scratch = None
        else:
            self._states.pop(key, None)

    def clear(self) -> None:
        self._states.clear()
        self._scratch = None


class KVState:
    """One conversation's KV cache: keys and values of the tokens in `ids`, in place."""

    def __init__(
        self,
        layers: int,
        kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
        max_len: int,
    ) -> None:
        self._shape = (layers, kv_heads, head_dim)
        self._dtype = dtype
        self._device = device
        self.max_len = max_len
        self.capacity = 0
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.ids: list[int] = []

    @property
    def length(self) -> int:
        return len(self.ids)

    def crop(self, length: int) -> None:
        """Forget every token from position `length` on (the buffers stay allocated)."""
        del self.ids[length:]

    def reserve(self, needed: int) -> None:
        """Makes room for `needed` tokens, doubling the buffers and copying what is cached."""
        if needed <= self.capacity:
            return
        capacity = max(_MIN_CAPACITY, self.capacity)
        while capacity < needed:
            capacity *= 2
        capacity = min(max(capacity, needed), max(self.max_len, needed))
        layers, kv_heads, head_dim = self._shape
        shape = (layers, kv_heads, capacity, head_dim)
        import torch

        k = torch.zeros(shape, dtype=self._dtype, device=self._device)
        v = torch.zeros(shape, dtype=self._dtype, device=self._device)
        if self.k is not None and self.v is not None and self.length:
            k[:, :, : self.length] = self.k[:, :, : self.length]
            v[:, :, : self.length] = self.v[:, :, : self.length]
        self.k, self.v, self.capacity = k, v, capacity
