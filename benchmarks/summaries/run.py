"""Measure each summarizer: the share of planted facts its final summary still holds.

Two settings, each with the real SmolLM2-135M as the summarizer's model:

* conversation compaction: the first exchanges of the fidelity conversation
  (`benchmarks.fidelity.data`) driven live through `Agent.send` at a prompt
  budget (scripted replies from the script, counted with SmolLM2's tokenizer),
  so compaction folds turns into the summary as in a chat; the planted facts
  are the answer keywords of the fidelity questions whose evidence was folded;
* documents of several sizes (`benchmarks.summaries.data`), summarized
  recursively (`Agent.summarize_text`'s machinery) to a target length.

A fact is present when its keyword is a word of the final summary. Results are
appended to a JSON lines file, one row per (setting, summarizer), so each
configuration can run as its own short job; `report` prints them as a table.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recursa.agent import Agent
from recursa.agent.digest import summarize_document
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.settings import SummarizerSettings
from recursa.agent.summarize import (
    ExtractiveSummarizer,
    FactSummarizer,
    ModelSummarizer,
    Summarizer,
)

from benchmarks.fidelity.data import generate
from benchmarks.fidelity.measure import REPLY_RESERVE, ScriptedClock, _turn
from benchmarks.summaries.data import document

SUMMARIZERS = {
    "extractive": "ExtractiveSummarizer (deterministic stand-in, no model)",
    "model": "ModelSummarizer, templates v1 (the model writes the summary)",
    "facts": "FactSummarizer, templates v2 (the new default)",
}


class Kept:
    """The shared model; an agent closing its summarizer leaves it loaded."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)

    def close(self) -> None:
        return None


class CountedScript(ScriptedRuntime):
    """Scripted replies (the conversation's own), counted with a real model's tokenizer.

    The chat model only replays the script; counting with SmolLM2's tokenizer
    makes the budget, the summary's share and the summarizer agree on tokens.
    """

    def __init__(self, counter: Any, replies: Sequence[str], context_window: int) -> None:
        super().__init__(replies=list(replies), default=None, context_window=context_window)
        self._counter = counter

    @property
    def tokenizer_id(self) -> str:
        return str(self._counter.tokenizer_id)

    def count_text(self, text: str) -> int:
        return int(self._counter.count_text(text))

    def count_tokens(self, messages: Any) -> int:
        return int(self._counter.count_tokens(messages))


def make_summarizer(kind: str, model: Any) -> Summarizer:
    if kind == "extractive":
        return ExtractiveSummarizer(model.count_text)
    if kind == "model":
        settings = SummarizerSettings(method="model", template_version="v1")
        return ModelSummarizer(model, settings)
    return FactSummarizer(model, SummarizerSettings())


@dataclass
class Row:
    setting: str
    summarizer: str
    planted: int
    present: int
    summary_tokens: int
    target_tokens: int
    calls: int
    seconds: float
    detail: str = ""

    @property
    def share(self) -> float:
        return self.present / self.planted if self.planted else 0.0


def has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE) is not None


def conversation(kind: str, model: Any, *, exchanges: int, budget: int, seed: int = 7) -> Row:
    """Drive the first `exchanges` exchanges live; score the final summary."""
    dialogue = generate(seed)
    pairs = list(dialogue.exchanges())[:exchanges]
    runtime = CountedScript(model, [a.content for _, a in pairs], budget + 512)
    summarizer = make_summarizer(kind, model)
    calls = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'conversation.db'}"
        settings = {
            "policy": "summary",
            "max_prompt_tokens": budget,
            "reply_reserve": REPLY_RESERVE,
            "max_new_tokens": 128,
        }
        clock = ScriptedClock()
        with (
            Agent.open(url, runtime, summarizer=summarizer, **settings) as agent,
            clock.installed(),
        ):
            cid = agent.create_conversation(title="summaries benchmark")
            for user, assistant in pairs:
                _turn(agent, cid, clock, user, assistant)
            chain = agent.summaries(cid)
            for m in agent.messages(cid):
                trace = agent.trace(m.id) if m.role == "assistant" else None
                if trace is not None:
                    calls += sum(c.summarizer_calls or 0 for c in trace.compactions)
            summary = chain[0] if chain else None
    seconds = time.perf_counter() - started
    covered = summary.covers_through_seq if summary else 0
    # Message i of the script is seq i + 1 (the conversation has no other messages).
    planted: dict[tuple[int, str], None] = {}
    for q in dialogue.questions:
        for index, keyword in zip(q.evidence, q.keywords, strict=True):
            if index < 2 * exchanges and index + 1 <= covered:
                planted[(index, keyword)] = None
    text = summary.content if summary else ""
    present = sum(1 for _, keyword in planted if has_word(text, keyword))
    return Row(
        setting=f"conversation, {exchanges} exchanges, budget {budget}",
        summarizer=kind,
        planted=len(planted),
        present=present,
        summary_tokens=model.count_text(text) if text else 0,
        target_tokens=0,
        calls=calls,
        seconds=round(seconds, 1),
        detail=f"{len(chain)} compactions, summary covers seqs 1-{covered}",
    )


def doc(kind: str, model: Any, *, tokens: int, target: int, seed: int = 11) -> Row:
    """Summarize a generated document of about `tokens` tokens to `target` tokens."""
    d = document(tokens, model.count_text, seed)
    summarizer = make_summarizer(kind, model)
    started = time.perf_counter()
    result = summarize_document(
        d.text, summarizer, count_text=model.count_text, max_tokens=target, model=model.name
    )
    seconds = time.perf_counter() - started
    present = sum(1 for f in d.facts if has_word(result.summary, f.keyword))
    return Row(
        setting=f"document, {d.tokens} tokens -> {target}",
        summarizer=kind,
        planted=len(d.facts),
        present=present,
        summary_tokens=result.tokens,
        target_tokens=target,
        calls=result.calls,
        seconds=round(seconds, 1),
        detail=f"{result.chunks} chunks, {result.levels} levels",
    )


def append(path: Path, row: Row) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps({**row.__dict__, "share": round(row.share, 3)}) + "\n")
