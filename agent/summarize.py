"""The recursive summarizer: summary[k+1] = summarize(summary[k], evicted turns).

`ModelSummarizer` asks a model through the runtime protocol, with the versioned
templates. Every request it sends fits the model's own context: an evicted span
that is too long is split and folded chunk by chunk (recursing down to pieces of
a single message), and a summary that outgrows its share is condensed.
`ExtractiveSummarizer` is a fast deterministic stand-in (no model) that keeps
the sentences richest in names and numbers; benchmarks and tests name it as such.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from recursa.agent.errors import ContextOverflowError, ModelError, RecursaError
from recursa.agent.runtime.protocol import ChatMessage, GenerationParams, Runtime
from recursa.agent.settings import Settings, SummarizerSettings
from recursa.agent.templates import Templates

log = logging.getLogger(__name__)

# Tokens kept free in every summarization request, beside the reply's own room.
REQUEST_MARGIN = 16


class SummarizationError(ModelError):
    """The summarizer produced nothing usable (model failure or empty output)."""


@dataclass(frozen=True)
class Turn:
    """One message handed to the summarizer."""

    role: str
    content: str


@dataclass
class SummaryResult:
    """A new summary and how it was made."""

    content: str
    prompt_version: str
    model: str
    calls: int = 0
    chunks: int = 0
    condensed: int = 0
    notes: list[str] = field(default_factory=list)


class Summarizer(Protocol):
    """Folds evicted turns into the previous summary."""

    @property
    def name(self) -> str: ...

    def fold(
        self, previous: str | None, turns: Sequence[Turn], *, max_tokens: int
    ) -> SummaryResult:
        """The new summary of `previous` + `turns`, at most `max_tokens` tokens long."""
        ...


def open_model_summarizer(
    settings: Settings,
    runtime: Runtime,
    model_spec: str,
    *,
    templates: Templates | None = None,
    progress: Callable[[str, float | None], None] | None = None,
) -> tuple[ModelSummarizer, Runtime | None]:
    """The summarizer the settings ask for, and the runtime it opened (None: it shares `runtime`).

    `settings.summarizer.model` names a separate summarizer model; when it is
    the conversation's own model (`model_spec`) or unset, `runtime` is used.
    The caller closes a runtime opened here.
    """
    own: Runtime | None = None
    wanted = settings.summarizer.model
    if wanted and wanted != model_spec:
        from recursa.agent.runtime.registry import open_runtime

        try:
            own = open_runtime(wanted, options=settings.runtime.options(), progress=progress)
        except RecursaError as exc:
            log.error("Loading the summarizer model %r failed: %s", wanted, exc)
            raise
        runtime = own
    return ModelSummarizer(runtime, settings.summarizer, templates), own


class ModelSummarizer:
    """Summarizes with a model; requests always fit the model's context."""

    def __init__(
        self,
        runtime: Runtime,
        settings: SummarizerSettings | None = None,
        templates: Templates | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = settings or SummarizerSettings()
        self.templates = templates or Templates.load(self.settings.template_version)

    @property
    def name(self) -> str:
        return self.runtime.name

    def request_limit(self, max_new_tokens: int) -> int:
        """The longest request (in tokens) that leaves room for the reply."""
        return self.runtime.context_window - max_new_tokens - REQUEST_MARGIN

    def fold(
        self, previous: str | None, turns: Sequence[Turn], *, max_tokens: int
    ) -> SummaryResult:
        result = SummaryResult(
            content=previous or "",
            prompt_version=self.templates.prompt_version("summarize"),
            model=self.runtime.name,
        )
        max_new = max(8, min(self.settings.max_new_tokens, max_tokens))
        window = self.runtime.context_window
        try:
            summary = self._fold(previous, list(turns), max_new, result)
        except ContextOverflowError:
            # A server refused a request as too long and stated a smaller window, which
            # the runtime now budgets for: fold again, once, in requests that fit it.
            if self.runtime.context_window >= window:
                raise
            result.notes.append(
                "the server refused a summarization request as too long; folded again "
                f"under its context window of {self.runtime.context_window} tokens"
            )
            summary = self._fold(previous, list(turns), max_new, result)
        summary = self.condense(summary, max_tokens, result)
        result.content = summary
        return result

    def _request(self, previous: str | None, turns: Sequence[Turn]) -> list[ChatMessage]:
        body = self.templates.render(
            "summarize",
            previous=previous,
            turns=[{"role": t.role, "content": t.content} for t in turns],
        )
        return [
            {"role": "system", "content": self.templates.system_text("summarize")},
            {"role": "user", "content": body},
        ]

    def _fold(
        self,
        previous: str | None,
        turns: list[Turn],
        max_new: int,
        result: SummaryResult,
        *,
        previous_condensed: bool = False,
    ) -> str:
        limit = self.request_limit(max_new)
        room = limit - self.runtime.count_tokens(self._request(None, []))
        if room < 16:
            raise SummarizationError(
                f"The summarizer model's context ({self.runtime.context_window} tokens) cannot "
                f"hold a request and a {max_new}-token reply; lower summarizer.max_new_tokens."
            )
        request = self._request(previous, turns)
        if self.runtime.count_tokens(request) <= limit:
            result.chunks += 1
            return self._generate(request, max_new, result)
        if previous and not previous_condensed and self.runtime.count_text(previous) > room // 2:
            # The running summary itself crowds the request: shrink it once, first.
            previous = self.condense(previous, room // 3, result)
            return self._fold(previous, turns, max_new, result, previous_condensed=True)
        if len(turns) > 1:
            # Chunk and recurse: fold the older half, then the newer half into that.
            middle = len(turns) // 2
            first = self._fold(previous, turns[:middle], max_new, result)
            return self._fold(first, turns[middle:], max_new, result)
        # One message longer than the summarizer's context: fold it in pieces.
        words = turns[0].content.split()
        if len(words) < 2:
            raise SummarizationError(
                "A single word is longer than the summarizer's context; it cannot be summarized."
            )
        middle = len(words) // 2
        role = turns[0].role
        parts = [Turn(role, " ".join(words[:middle])), Turn(role, " ".join(words[middle:]))]
        return self._fold(previous, parts, max_new, result)

    def condense(self, summary: str, max_tokens: int, result: SummaryResult) -> str:
        """Shrink `summary` to at most `max_tokens` tokens (model first, then a visible cut)."""
        for _ in range(2):
            if self.runtime.count_text(summary) <= max_tokens:
                return summary
            request: list[ChatMessage] = [
                {"role": "system", "content": self.templates.system_text("condense")},
                {
                    "role": "user",
                    "content": self.templates.render(
                        "condense", summary=summary, max_words=max(8, int(max_tokens * 0.6))
                    ),
                },
            ]
            max_new = max(8, max_tokens)
            if self.runtime.count_tokens(request) > self.request_limit(max_new):
                break
            result.condensed += 1
            summary = self._generate(request, max_new, result)
        if self.runtime.count_text(summary) > max_tokens:
            summary = cut_to_tokens(self.runtime.count_text, summary, max_tokens)
            result.notes.append(f"summary cut to its share of {max_tokens} tokens")
        return summary

    def _generate(self, request: list[ChatMessage], max_new: int, result: SummaryResult) -> str:
        params = GenerationParams(
            max_new_tokens=max_new,
            temperature=0.0,
            repetition_penalty=self.settings.repetition_penalty,
        )
        result.calls += 1
        try:
            stream = self.runtime.stream(request, params, cache_key="recursa-summarizer")
            text = stream.complete().text
        except ModelError:
            raise
        except Exception as exc:  # a runtime bug must still not lose the turn: report it typed
            raise SummarizationError(f"The summarizer model failed: {exc}") from exc
        text = text.strip()
        if not text:
            raise SummarizationError("The summarizer model returned an empty summary.")
        return text


_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_SALIENT = re.compile(r"\b(?:[A-Z][a-z]+|\d[\d:./-]*)\b")


class ExtractiveSummarizer:
    """A deterministic extractive summarizer (no model): keeps the most fact-dense sentences.

    A stand-in for benchmarks and tests that need many compactions quickly.
    Sentences are scored by how many capitalised words and numbers they hold;
    the best ones are kept, in their original order, within the token limit.
    """

    def __init__(self, count_text: Callable[[str], int] | None = None) -> None:
        # Pass the runtime's count_text so summaries fit their share in *its* tokens.
        self._count = count_text or _word_count

    @property
    def name(self) -> str:
        return "extractive"

    def fold(
        self, previous: str | None, turns: Sequence[Turn], *, max_tokens: int
    ) -> SummaryResult:
        sentences: list[str] = []
        if previous:
            sentences.extend(s.strip() for s in _SENTENCE.findall(previous) if s.strip())
        for turn in turns:
            for s in _SENTENCE.findall(turn.content):
                s = s.strip()
                if s:
                    sentences.append(f"{turn.role}: {s}" if turn.role != "summary" else s)
        scored = sorted(
            range(len(sentences)),
            key=lambda i: (-len(_SALIENT.findall(sentences[i])), -i),
        )
        keep: set[int] = set()
        used = 0
        for i in scored:
            cost = self._count(sentences[i]) + 1
            if used + cost <= max_tokens:
                keep.add(i)
                used += cost
        content = " ".join(sentences[i] for i in sorted(keep)) or (previous or "")
        return SummaryResult(content=content, prompt_version="extractive/v1", model="extractive")


def _word_count(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def cut_to_tokens(count_text: Callable[[str], int], text: str, max_tokens: int) -> str:
    """The longest word prefix of `text` within `max_tokens`, ending with '…'."""
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_text(" ".join(words[:mid]) + " …") <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]) + " …"
