"""Token-by-token helpers of the local decode loop: sampling, stable detokenizing, stop strings.

Only imported by the local runtime, after torch is known to be installed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
from recursa.agent.runtime.protocol import GenerationParams


class Sampler:
    """Picks the next token from float32 logits as `GenerationParams` asks.

    Repetition penalty and no-repeat n-grams look at the prompt and the reply
    together, as Hugging Face's processors of the same names do.
    """

    def __init__(self, params: GenerationParams, prompt: Sequence[int], vocab_size: int) -> None:
        self._params = params
        self._history: list[int] = list(prompt)
        self._seen: torch.Tensor | None = None
        if params.repetition_penalty != 1.0:
            self._seen = torch.zeros(vocab_size, dtype=torch.bool)
            if self._history:
                self._seen[torch.tensor(self._history)] = True
        self._ngrams: dict[tuple[int, ...], set[int]] = {}
        n = params.no_repeat_ngram_size
        if n > 0:
            for start in range(len(self._history) - n + 1):
                self._remember(self._history[start : start + n])
        self._generator: torch.Generator | None = None
        if params.temperature > 0:
            seed = params.seed if params.seed is not None else random.SystemRandom().getrandbits(63)
            self._generator = torch.Generator().manual_seed(seed)

    def _remember(self, gram: Sequence[int]) -> None:
        self._ngrams.setdefault(tuple(gram[:-1]), set()).add(gram[-1])

    def pick(self, logits: torch.Tensor) -> int:
        params = self._params
        if self._seen is not None:
            p = params.repetition_penalty
            penalized = torch.where(logits > 0, logits / p, logits * p)
            logits = torch.where(self._seen, penalized, logits)
        n = params.no_repeat_ngram_size
        if n > 0 and len(self._history) >= n - 1:
            key = tuple(self._history[len(self._history) - (n - 1) :]) if n > 1 else ()
            banned = self._ngrams.get(key)
            if banned:
                logits = logits.clone()
                logits[torch.tensor(sorted(banned))] = float("-inf")
        token = int(torch.argmax(logits)) if self._generator is None else self._sample(logits)
        self._accept(token)
        return token

    def _sample(self, logits: torch.Tensor) -> int:
        probs = torch.softmax(logits / self._params.temperature, dim=-1)
        if self._params.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
            # Keep the smallest head of the distribution whose mass reaches top_p.
            sorted_probs = torch.where(before < self._params.top_p, sorted_probs, 0.0)
            choice = torch.multinomial(sorted_probs, 1, generator=self._generator)
            return int(order[choice])
        return int(torch.multinomial(probs, 1, generator=self._generator))

    def _accept(self, token: int) -> None:
        self._history.append(token)
        if self._seen is not None:
            self._seen[token] = True
        n = self._params.no_repeat_ngram_size
        if n > 0 and len(self._history) >= n:
            self._remember(self._history[len(self._history) - n :])


class IncrementalDetokenizer:
    """Turns generated token ids into text, releasing only text that later tokens cannot change.

    Byte-level tokenizers split multi-byte characters across tokens; a decode
    that ends in U+FFFD is incomplete, so it is held back until the next token
    completes it (the prefix/read offsets scheme of text-generation servers).
    """

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def push(self, token: int) -> str:
        self._ids.append(token)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character decodes as U+FFFD)."""
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return after[len(before) :]


class StopMatcher:
    """Cuts the reply before the first stop string, holding back text that may begin one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Returns (text safe to emit, whether a stop string was reached)."""
        if not self._stops:
            return text, False
        self._pending += text
        hits = [i for i in (self._pending.find(s) for s in self._stops) if i >= 0]
        if hits:
            cut = min(hits)
            out, self._pending = self._pending[:cut], ""
            return out, True
        hold = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(self._pending)), hold, -1):
                if self._pending.endswith(stop[:size]):
                    hold = size
                    break
        cut = len(self._pending) - hold
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return out, False

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out
