"""Fixtures for the recall tests: the real all-MiniLM-L6-v2, loaded once, and a second embedder.

`minilm` is the embedding model recall ships with (marked `embedder`: it loads
torch and the model, about a second). `keyword_embedder` is a small test double
with another id and dimension, for checks that two embedders never mix.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from recursa.agent.recall.embedders import MINILM_INSTALL, LocalEmbedder, open_embedder


@pytest.fixture(scope="session")
def minilm() -> Iterator[LocalEmbedder]:
    """The default embedder (all-MiniLM-L6-v2 from its wheel), loaded once per session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    embedder = open_embedder("minilm")
    if embedder is None:
        pytest.skip(f"the embedding model is not installed: {MINILM_INSTALL}")
    assert isinstance(embedder, LocalEmbedder)
    embedder.load()
    yield embedder
    embedder.close()


class KeywordEmbedder:
    """Test double: words hashed into 32 buckets, normalised. Another id, another dimension."""

    id = "test:keywords"
    dim = 32

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, hashlib.sha1(word.encode()).digest()[0] % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    def close(self) -> None:
        return None


@pytest.fixture
def keyword_embedder() -> KeywordEmbedder:
    return KeywordEmbedder()
