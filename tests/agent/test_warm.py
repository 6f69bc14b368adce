"""Warm-up: `Agent.warm` prefills a conversation's prompt prefix so its next turn reuses it.

The prefill itself needs a model with a KV cache, so the main test runs the real
SmolLM2 (greedy); the scripted model checks what happens without one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from recursa.agent import Agent
from recursa.agent.errors import NotFoundError
from recursa.agent.runtime.protocol import GenerationParams, prefix_cache_key
from recursa.agent.runtime.scripted import ScriptedRuntime

MakeAgent = Callable[..., Agent]

FACTS = [
    ("My sister is called Ada and she lives in Lyon.", "Nice, Ada in Lyon."),
    ("I keep bees in the garden.", "Bees are wonderful."),
    ("My car is a green Renault.", "A green Renault, noted."),
    ("I play the cello on Sundays.", "Cello on Sundays, lovely."),
]


def imported(agent: Agent) -> int:
    messages = []
    for question, answer in FACTS:
        messages += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    return agent.import_conversation({"title": "facts", "messages": messages})


@pytest.mark.model
def test_warm_prefills_the_prefix_and_the_first_message_reuses_it(
    make_agent: MakeAgent, shared_model: Any
) -> None:
    """After warm(), the first turn prefills only its message and answers as a cold turn does."""
    agent = make_agent(shared_model, max_prompt_tokens=512)
    warm_id, cold_id = imported(agent), imported(agent)
    key = prefix_cache_key(warm_id)
    shared_model.forget(key)
    assert agent.warm(warm_id) is True
    assert agent.wait_background(warm_id, timeout=120)
    prefix = agent.preview_prompt(warm_id, "").messages[:-1]
    assert shared_model.cached_ids(key) == shared_model.prefix_ids(prefix)

    params = GenerationParams(max_new_tokens=12)
    question = "What is my sister called?"
    warm = agent.send(warm_id, question, params=params)
    assert warm.usage is not None
    assert warm.usage.reused_tokens >= len(shared_model.cached_ids(key)) - len(
        shared_model.prompt_ids([{"role": "user", "content": question}])
    )
    # Only the new message (and the reply's header) was computed.
    assert warm.usage.prefill_tokens < 32 < warm.usage.reused_tokens
    shared_model.forget(prefix_cache_key(cold_id))
    cold = agent.send(cold_id, question, params=params)
    assert cold.usage is not None and cold.usage.reused_tokens == 0
    assert warm.text == cold.text


def test_warm_without_a_loaded_model_or_a_cache_does_nothing(make_agent: MakeAgent) -> None:
    """warm() returns False when there is nothing to prefill into; unknown ids raise."""
    agent = make_agent(ScriptedRuntime())
    cid = agent.create_conversation()
    assert agent.warm(cid) is False
    with pytest.raises(NotFoundError):
        agent.warm(cid + 1000)
    unloaded = Agent.open(agent.database_url, "smollm2-135m")
    try:
        assert unloaded.warm(cid) is False and not unloaded.model_loaded
    finally:
        unloaded.close()
