"""The dialogue manager with the real SmolLM2-135M model (greedy decoding).

One long conversation under a 512-token budget: compaction with the model as
summarizer, every plan within budget by the model's own tokenizer, and every
trace re-rendered from the stored records into the exact token ids that were
sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from recursa.agent import Agent

pytestmark = pytest.mark.model

MakeAgent = Callable[..., Agent]


# Enough turns at 512 tokens for two compactions with this hysteresis band (the first
# comes after about ten exchanges, the next about seven later), with room to spare.
TURNS = 24


def test_many_turns_under_512_tokens_compact_recursively_and_traces_are_exact(
    make_agent: MakeAgent, shared_model: Any
) -> None:
    """24 turns at 512 tokens: >= 2 compactions, chain depth >= 2, exact prompts in traces."""
    agent = make_agent(
        shared_model,
        max_prompt_tokens=512,
        max_new_tokens=12,
        # A wide hysteresis band: each compaction folds several exchanges at once.
        budget={"window_share": 0.6, "low_water": 0.3},
        summarizer={"max_new_tokens": 32},
    )
    cid = agent.create_conversation(system_prompt="You are a friendly assistant. Answer briefly.")
    compactions = 0
    for i in range(TURNS):
        reply = agent.send(cid, f"Note {i}: my friend Name{i} lives in City{i}.")
        assert reply.status == "complete"
        trace = reply.trace
        assert trace is not None
        assert trace.budget == 512
        # The invariant, by the model's own tokenizer and chat template.
        sent_ids = shared_model.prompt_ids(trace.messages)
        assert len(sent_ids) == trace.total_tokens <= trace.budget
        assert reply.usage is not None and reply.usage.prompt_tokens == trace.total_tokens
        # Re-render from the stored records and compare token ids.
        assert shared_model.prompt_ids(agent.reconstruct_prompt(reply.message_id)) == sent_ids
        compactions += sum(1 for c in trace.compactions if c.status == "compacted")
        for c in trace.compactions:
            assert c.status in ("compacted", "not_needed"), c
    chain = agent.summaries(cid)
    assert compactions >= 2 and len(chain) == compactions
    assert chain[0].depth >= 2
    assert all(s.model == shared_model.name and s.prompt_version == "facts/v2" for s in chain)
    assert all(s.tokenizer_id == shared_model.tokenizer_id for s in chain)
    # The summary is in the prompt's first message, so consecutive prompts share a prefix.
    last = agent.trace(agent.messages(cid)[-1].id)
    assert last.summary_id == chain[0].id
    assert chain[0].content in last.messages[0]["content"]
    assert len(agent.messages(cid)) == 2 * TURNS


def test_preview_counts_match_the_model_tokenizer(make_agent: MakeAgent, shared_model: Any) -> None:
    """Each section's tokens sum to the exact count of the rendered prompt."""
    agent = make_agent(shared_model, max_prompt_tokens=300)
    doc = {
        "messages": [
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": f"Message {i} about lighthouses and tides.",
            }
            for i in range(30)
        ]
    }
    cid = agent.import_conversation(doc)
    plan = agent.preview_prompt(cid, "What did we say about tides?")
    assert shared_model.count_tokens(plan.messages) == plan.total_tokens <= plan.budget
    assert sum(s.tokens for s in plan.sections) == plan.total_tokens
    assert plan.dropped_ids  # 30 messages do not fit 300 tokens: compaction is due
