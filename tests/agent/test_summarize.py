"""The recursive summarizer: every request fits the summarizer's context; summaries fit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.settings import SummarizerSettings
from recursa.agent.summarize import (
    ExtractiveSummarizer,
    ModelSummarizer,
    SummarizationError,
    SummaryResult,
    Turn,
)
from recursa.agent.templates import Templates


def summary_of(messages: Sequence[Any]) -> str:
    """A scripted 'summary': the first words of the request's last line block."""
    body = messages[-1]["content"]
    return "summary: " + " ".join(body.split()[-12:])


def test_every_request_fits_the_summarizer_context_by_chunking() -> None:
    """A long evicted span is folded chunk by chunk; no request overflows the context."""
    runtime = ScriptedRuntime(default=summary_of, context_window=256)
    summarizer = ModelSummarizer(runtime, SummarizerSettings(max_new_tokens=40))
    turns = [
        Turn("user" if i % 2 == 0 else "assistant", f"turn {i} " + "word " * 30) for i in range(30)
    ]
    result = summarizer.fold("an earlier summary", turns, max_tokens=60)
    assert result.calls == len(runtime.calls) > 1 and result.chunks > 1
    for call in runtime.calls:
        assert runtime.count_tokens(call.messages) + call.params.max_new_tokens <= 256
    assert runtime.count_text(result.content) <= 60
    # summary[k+1] = summarize(summary[k], evicted): the first request carries the old summary.
    assert "an earlier summary" in runtime.calls[0].messages[-1]["content"]
    assert result.prompt_version == "summarize/v2"


def test_a_single_message_longer_than_the_context_is_split() -> None:
    """Even one huge message is summarized in pieces, never sent whole."""
    runtime = ScriptedRuntime(default=summary_of, context_window=200)
    summarizer = ModelSummarizer(runtime, SummarizerSettings(max_new_tokens=32))
    result = summarizer.fold(None, [Turn("user", "lorem " * 600)], max_tokens=50)
    assert result.content.startswith("summary:")
    for call in runtime.calls:
        assert runtime.count_tokens(call.messages) + call.params.max_new_tokens <= 200


def test_summary_outgrowing_its_share_is_condensed() -> None:
    """When the new summary is over its share, a condense request shortens it."""
    long = "fact " * 100

    def reply(messages: Sequence[Any]) -> str:
        return "short fact list" if "Shorten" in messages[-1]["content"] else long

    runtime = ScriptedRuntime(default=reply, context_window=1024)
    summarizer = ModelSummarizer(runtime, SummarizerSettings(max_new_tokens=300))
    result = SummaryResult("", "summarize/v1", "scripted")
    assert summarizer.condense(long, 30, result) == "short fact list"
    assert result.condensed == 1


def test_summary_too_long_to_condense_is_cut_visibly() -> None:
    """A summary too long even for a condense request is cut at a word, marked and noted."""
    runtime = ScriptedRuntime(default="unused", context_window=200)
    summarizer = ModelSummarizer(runtime, SummarizerSettings(max_new_tokens=300))
    result = SummaryResult("", "summarize/v1", "scripted")
    cut = summarizer.condense("fact " * 100, 30, result)
    assert runtime.count_text(cut) <= 30 and cut.endswith("…")
    assert result.notes and result.condensed == 0 and runtime.calls == []


def test_empty_or_failing_model_output_is_a_summarization_error() -> None:
    """Empty output and runtime failures raise SummarizationError (a ModelError)."""
    with pytest.raises(SummarizationError, match="empty"):
        ModelSummarizer(ScriptedRuntime(default="   ")).fold(
            None, [Turn("user", "x")], max_tokens=50
        )
    with pytest.raises(SummarizationError, match="boom"):
        ModelSummarizer(ScriptedRuntime(replies=[RuntimeError("boom")])).fold(
            None, [Turn("user", "x")], max_tokens=50
        )


def test_extractive_summarizer_keeps_fact_dense_sentences_within_limit() -> None:
    """The deterministic stand-in keeps names and numbers and respects the limit."""
    s = ExtractiveSummarizer()
    result = s.fold(
        "Earlier: Ada lives in Paris.",
        [Turn("user", "It rained. My locker code is 4821. Nice day.")],
        max_tokens=20,
    )
    assert "4821" in result.content and "Ada" in result.content
    assert result.prompt_version == "extractive/v1"


def test_templates_are_strict_and_versioned() -> None:
    """A missing template variable raises instead of rendering blank."""
    import jinja2

    t = Templates.load("v1")
    with pytest.raises(jinja2.UndefinedError):
        t.render("summarize", previous=None)
    from recursa.agent.errors import ConfigError

    with pytest.raises(ConfigError, match="v1"):
        Templates.load("v999")
