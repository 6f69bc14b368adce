"""The fact-keeping summarizer and document summaries with the real SmolLM2-135M (greedy).

The model is the default one, loaded once per session (tests/conftest.py). The
document here is small (about 3,000 tokens) so the suite stays fast; the 20k-
token document runs through the same code with the scripted model in
test_document_summaries.py, and at full size in `python -m benchmarks.summaries`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from recursa.agent import Agent

from benchmarks.fidelity.vocabulary import ACKS, OBSERVATIONS
from benchmarks.summaries.data import document

MakeAgent = Callable[..., Agent]
PLANTED = {
    "Okonkwo": "By the way, my dentist's name is Okonkwo.",
    "5619": "Note this: the code for my gym locker is 5619.",
    "Tallinn": "My sister moved to Tallinn last June.",
}


def test_a_compaction_keeps_three_planted_facts(make_agent: MakeAgent, shared_model: Any) -> None:
    """Turns holding three facts among chit-chat, folded by the real model's summarizer."""
    agent = make_agent(shared_model, max_prompt_tokens=512)
    start = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
    messages: list[dict[str, Any]] = []
    facts = iter(PLANTED.values())
    for i in range(24):
        user = next(facts) if i in (3, 10, 17) else OBSERVATIONS[i % len(OBSERVATIONS)]
        for role, content in (("user", user), ("assistant", ACKS[i % len(ACKS)])):
            when = start + timedelta(days=i // 8, minutes=2 * len(messages))
            messages.append({"role": role, "content": content, "created_at": when.isoformat()})
    cid = agent.import_conversation({"title": "facts", "messages": messages})
    report = agent.compact(cid, force=True)
    assert report.status == "compacted", report
    summary = agent.summaries(cid)[0]
    assert summary.prompt_version == "facts/v2" and summary.model == shared_model.name
    for keyword in PLANTED:
        assert keyword in summary.content, summary.content
    # Each folded span carries its dates.
    assert re.search(r"^\[2024-03-04( to 2024-03-0\d)?\] ", summary.content, re.M)


def test_a_document_is_summarized_recursively_by_the_real_model(
    make_agent: MakeAgent, shared_model: Any
) -> None:
    """3k tokens to 64: done in chunks, within target, the tree tiles the whole input once."""
    agent = make_agent(shared_model)
    doc = document(3000, shared_model.count_text)
    result = agent.summarize_text(doc.text, max_tokens=64, chunk_tokens=1024)
    assert result.tokens == shared_model.count_text(result.summary) <= 64
    assert result.chunks > 1 and result.levels >= 2 and result.model == shared_model.name
    leaves = result.tree.leaves()
    assert "".join(doc.text[n.start : n.end] for n in leaves) == doc.text
    assert sum(1 for f in doc.facts if f.keyword in result.summary) >= 2
    assert result.calls >= 1  # the model condensed what did not fit (and was checked)
