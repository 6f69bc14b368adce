"""The fallback forward pass for any causal LM: Hugging Face's own, over a `DynamicCache`.

Used for architectures the lean Llama engine does not reproduce. It offers the
same small interface (`new_state`, `forward`, state `ids`/`crop`).
Only imported by the local runtime, after torch is known to be installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class GenericState:
    """One conversation's Hugging Face cache and the token ids it covers."""

    def __init__(self) -> None:
        self.cache: Any = None
        self.ids: list[int] = []

    @property
    def length(self) -> int:
        return len(self.ids)

    def crop(self, length: int) -> None:
        drop = len(self.ids) - length
        if drop <= 0:
            return
        if length == 0:
            self.cache = None
        else:
            # DynamicCache.crop takes the number of tokens to remove, negated.
            self.cache.crop(-drop)
        del self.ids[length:]


class GenericEngine:
    """Calls the model's forward with its own cache; slower, but works for any causal LM."""

    def __init__(self, model: Any, *, device: torch.device) -> None:
        self.model = model
        self.device = device
        self.max_len = int(getattr(model.config, "max_position_embeddings", 0) or 1 << 30)

    def new_state(self) -> GenericState:
        return GenericState()

    def forward(
        self, state: GenericState, ids: list[int], *, yield_to: Callable[[], bool] | None = None
    ) -> torch.Tensor | None:
        """Feeds `ids` after the cached ones; logits of the last, or None when asked to yield.

        Hugging Face's forward cannot stop between layers: `yield_to` is asked before it.
        """
        from transformers import DynamicCache

        if yield_to is not None and yield_to():
            return None

        if state.cache is None:
            state.cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=torch.tensor([ids], device=self.device),
            past_key_values=state.cache,
            use_cache=True,
        )
        state.cache = out.past_key_values
        state.ids.extend(ids)
        return out.logits[0, -1].float()
