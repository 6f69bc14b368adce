"""The real SmolLM2 model behind `recursa serve`, through the official openai client."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.model


def test_smollm_answers_through_the_openai_client_streamed_and_whole(
    make_agent: Any, shared_model: Any, serve_agent: Any, openai_client: Any
) -> None:
    agent = make_agent(shared_model)
    served = serve_agent(agent)
    client = openai_client(served, timeout=120)
    (model,) = [m.id for m in client.models.list()]
    history = [{"role": "user", "content": "What is the capital of France?"}]
    whole = client.chat.completions.create(model=model, messages=history, max_tokens=8)
    text = whole.choices[0].message.content
    assert text and whole.usage.completion_tokens <= 8
    history += [
        {"role": "assistant", "content": text},
        {"role": "user", "content": "And of Italy?"},
    ]
    stream = client.chat.completions.create(
        model=model,
        messages=history,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed and 1 <= chunks[-1].usage.completion_tokens <= 8
    (conv,) = agent.list_conversations()  # the replayed history continued one conversation
    stored = agent.messages(conv.id)
    assert [(m.role, m.content) for m in stored] == [(h["role"], h["content"]) for h in history] + [
        ("assistant", streamed)
    ]
    trace = agent.trace(stored[-1].id)
    assert trace.params["max_new_tokens"] == 8 and trace.total_tokens <= trace.budget
