"""`Agent.summarize_text`: recursive summaries of long documents, with a chunk tree.

Fast by design: the model is the scripted one (replies from a function, calls
recorded, a word tokenizer), which drives a 20k-token document through the
tree; the real SmolLM2 summarizes a smaller document in test_summaries_real.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from recursa.agent import Agent, InvalidInputError, SummaryNode, TextSummary
from recursa.agent import facts as F
from recursa.agent.runtime.scripted import ScriptedRuntime

from benchmarks.summaries.data import document

MakeAgent = Callable[..., Agent]


def assert_tree_covers(result: TextSummary, text: str) -> None:
    """Leaves tile the text exactly once; every parent spans exactly its children."""
    leaves = result.tree.leaves()
    assert leaves[0].start == 0 and leaves[-1].end == len(text)
    for before, after in zip(leaves, leaves[1:], strict=False):
        assert before.end == after.start and before.start < before.end

    def check(node: SummaryNode) -> None:
        if node.children:
            assert node.start == node.children[0].start and node.end == node.children[-1].end
            assert all(c.level < node.level for c in node.children)
            for child in node.children:
                check(child)

    check(result.tree)
    assert "".join(text[leaf.start : leaf.end] for leaf in leaves) == text


def test_a_20k_token_document_is_summarized_recursively_within_its_target(
    make_agent: MakeAgent,
) -> None:
    """20k tokens -> 256: several chunks and levels, within target, the tree tiles the input."""
    runtime = ScriptedRuntime(default="Nothing to add.", context_window=4096)
    agent = make_agent(runtime)
    doc = document(20_000, runtime.count_text)
    assert doc.tokens >= 20_000
    steps: list[tuple[str, float | None]] = []
    result = agent.summarize_text(
        doc.text, max_tokens=256, progress=lambda m, f: steps.append((m, f))
    )
    assert result.tokens == runtime.count_text(result.summary) <= 256
    assert result.chunks == len(result.tree.leaves()) > 1 and result.levels >= 2
    assert result.method == "facts/v2" and result.source_chars == len(doc.text)
    assert_tree_covers(result, doc.text)
    assert len(steps) >= result.chunks and steps[0][0].startswith("summarizing chunk 1")
    kept = [f for f in doc.facts if f.keyword in result.summary]
    assert len(kept) >= 6, [f.sentence for f in doc.facts if f not in kept]
    # Each summary sentence points at the source sentence it came from.
    located = [s for s in result.sources if s.start is not None]
    assert located
    for s in located:
        assert s.end is not None and F.kept(s.text, doc.text[s.start : s.end])


def test_the_model_method_sends_requests_that_always_fit_the_context(
    make_agent: MakeAgent,
) -> None:
    """summarizer.method "model": the model writes every node; no request overflows."""

    def summary(messages: Sequence[Any]) -> str:
        return "summary: " + " ".join(messages[-1]["content"].split()[-20:])

    runtime = ScriptedRuntime(default=summary, context_window=1024)
    agent = make_agent(runtime, summarizer={"method": "model"})
    doc = document(6000, runtime.count_text)
    result = agent.summarize_text(doc.text, max_tokens=64)
    assert result.method == "digest/v2" and result.calls == len(runtime.calls) > result.chunks
    for call in runtime.calls:
        assert runtime.count_tokens(call.messages) + call.params.max_new_tokens <= 1024
    assert result.tokens <= 64
    assert_tree_covers(result, doc.text)


def test_one_sentence_longer_than_a_chunk_is_split_between_words(make_agent: MakeAgent) -> None:
    """Text without sentence ends still tiles into chunks that fit."""
    runtime = ScriptedRuntime(default="ok", context_window=512)
    agent = make_agent(runtime)
    text = " ".join(f"word{i}" for i in range(3000))
    result = agent.summarize_text(text, max_tokens=32)
    assert result.chunks > 1 and result.tokens <= 32
    assert_tree_covers(result, text)


def test_a_text_that_fits_is_its_own_summary(make_agent: MakeAgent) -> None:
    agent = make_agent(ScriptedRuntime())
    result = agent.summarize_text("My sister's name is Ada.", max_tokens=64)
    assert result.summary == "My sister's name is Ada." and result.calls == 0
    assert result.chunks == 1 and result.levels == 1 and result.notes


@pytest.mark.parametrize(
    ("text", "tokens", "message"),
    [("   \n", 64, "empty"), ("Some text.", 4, "too small"), (b"bytes", 64, "string")],
)
def test_bad_input_is_a_clear_error(make_agent: MakeAgent, text: Any, tokens: int, message: str):
    agent = make_agent(ScriptedRuntime())
    with pytest.raises(InvalidInputError, match=message):
        agent.summarize_text(text, max_tokens=tokens)
