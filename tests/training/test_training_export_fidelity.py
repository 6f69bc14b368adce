"""Exported prompts are, token for token, what the real model was given when it replied."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from recursa.agent.runtime.protocol import (
    CancelToken,
    ChatMessage,
    GenerationParams,
    TextStream,
)

pytestmark = pytest.mark.model


@dataclass
class RecordingRuntime:
    """The real local runtime, passed through, noting the token ids of every prompt it is given."""

    inner: Any
    prompts: list[list[int]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def context_window(self) -> int:
        return int(self.inner.context_window)

    @property
    def tokenizer_id(self) -> str:
        return str(self.inner.tokenizer_id)

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return int(self.inner.count_tokens(messages))

    def count_text(self, text: str) -> int:
        return int(self.inner.count_text(text))

    def stream(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams | None = None,
        *,
        cache_key: str | None = None,
        cancel: CancelToken | None = None,
    ) -> TextStream:
        self.prompts.append(self.inner.prompt_ids(messages))
        return self.inner.stream(messages, params, cache_key=cache_key, cancel=cancel)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def recorded_agent(tmp_path: Path) -> Iterator[tuple[Any, RecordingRuntime]]:
    """An Agent on SQLite over the real SmolLM2, with an extractive (model-free) summarizer
    so a summary enters the prompt quickly."""
    pytest.importorskip("torch")
    from recursa.agent import Agent
    from recursa.agent.runtime.registry import open_runtime
    from recursa.agent.summarize import ExtractiveSummarizer

    runtime = RecordingRuntime(open_runtime("smollm2-135m"))
    agent = Agent.open(
        f"sqlite:///{tmp_path / 'fidelity.db'}", runtime, summarizer=ExtractiveSummarizer()
    )
    try:
        yield agent, runtime
    finally:
        agent.close()


def test_exported_prompt_equals_the_tokens_the_runtime_was_given(
    recorded_agent: tuple[Any, RecordingRuntime], tokenizer: Any
) -> None:
    """For each stored reply (summary, window and new message in the prompt), re-rendering the
    exported prompt with the runtime's chat template gives the exact ids it generated from,
    and the trainer's masking sees the same prompt tokens."""
    from recursa.agent.training.masking import encode_example, prompt_token_ids

    agent, runtime = recorded_agent
    params = GenerationParams(max_new_tokens=8)
    cid = agent.create_conversation(system_prompt="You are a terse assistant.")
    given: dict[int, list[int]] = {}
    for text in ("My cat is called Pixel.", "I live in Lyon and I like tea."):
        reply = agent.send(cid, text, params=params)
        given[reply.message_id] = runtime.prompts[-1]
    agent.compact(cid, force=True)
    reply = agent.send(cid, "What is my cat called?", params=params)
    given[reply.message_id] = runtime.prompts[-1]
    assert agent.trace(reply.message_id).plan.summary_id is not None  # a recursive prompt

    examples = agent.export_dataset(conversation_ids=[cid])
    assert len(examples) == 3
    replies = [m for m in agent.messages(cid) if m.role == "assistant"]
    for example, stored in zip(examples, replies, strict=True):
        prompt = example["messages"][:-1]
        assert example["messages"][-1] == {"role": "assistant", "content": stored.content}
        ids = runtime.inner.prompt_ids(prompt)
        assert ids == given[stored.id]
        assert len(ids) == agent.trace(stored.id).total_tokens
        assert prompt_token_ids(tokenizer, prompt) == ids
        encoded = encode_example(tokenizer, example, max_tokens=4096)
        assert encoded is not None and encoded.input_ids[: encoded.prompt_tokens] == ids
