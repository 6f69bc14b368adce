"""Fixtures for the training tests: the real SmolLM2 folder and tokenizer, a tiny Llama, datasets.

The real model is the converted default (shared test cache, converted once).
The tiny model is a real, randomly initialised Llama (2 layers, hidden size 32)
that uses SmolLM2's real tokenizer and chat template: it runs the training
machinery (checkpoints, resume, errors) in a fraction of a second per step;
learning itself is tested on the real model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from training_data import taught_examples, write_examples

SHARED_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "test-cache"


@pytest.fixture(autouse=True)
def close_log_file() -> Iterator[None]:
    """A CLI run writes the log file of the test's RECURSA_HOME; close it after the test."""
    yield
    from recursa.agent.logs import stop_logging

    stop_logging()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The default model's converted safetensors folder (the one the local runtime loads)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from recursa.agent.runtime.default_model import default_gguf_path
    from recursa.agent.runtime.local.convert import ensure_converted

    return ensure_converted(default_gguf_path(), cache_root=SHARED_CACHE / "models").path


@pytest.fixture(scope="session")
def tokenizer(smollm2_dir: Path) -> Any:
    """SmolLM2's real tokenizer with its chat template."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    """A tiny random Llama saved with SmolLM2's tokenizer: a base model that trains fast."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1234)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def taught_data(tmp_path: Path) -> Path:
    """A JSONL file of 32 examples teaching the lighthouse password."""
    return write_examples(tmp_path / "taught.jsonl", taught_examples())
