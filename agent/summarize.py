"""The recursive summarizers: summary[k+1] = summarize(summary[k], evicted turns).

`FactSummarizer` (the default, summarizer.method "facts") keeps the concrete
facts of the evicted turns whatever the model's size: it picks the
fact-bearing sentences first, with no model (`recursa.agent.facts`), asks the
model to condense only what does not fit its share, checks the answer and adds
back every fact it dropped while the share allows. Each fold is one dated line
of the summary, so "when did I say ..." can be answered from it.
`ModelSummarizer` (method "model") asks a model through the runtime protocol, with the versioned
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
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from recursa.agent import facts as F
from recursa.agent.errors import ModelError, RecursaError
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
    created_at: datetime | None = None


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

    def summarize_text(self, text: str, *, max_tokens: int) -> SummaryResult:
        """A summary of one piece of a document, at most `max_tokens` tokens long."""
        ...

    def input_limit(self, max_tokens: int) -> int | None:
        """The longest text (in tokens) `summarize_text` takes at once (None: no limit)."""
        ...


def open_model_summarizer(
    settings: Settings,
    runtime: Runtime,
    model_spec: str,
    *,
    templates: Templates | None = None,
    progress: Callable[[str, float | None], None] | None = None,
    method: str | None = None,
) -> tuple[ModelSummarizer, Runtime | None]:
    """The summarizer the settings ask for, and the runtime it opened (None: it shares `runtime`).

    `settings.summarizer.model` names a separate summarizer model; when it is
    the conversation's own model (`model_spec`) or unset, `runtime` is used.
    `method` overrides `settings.summarizer.method` ("facts" or "model").
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
    kind = method or settings.summarizer.method
    cls = FactSummarizer if kind == "facts" else ModelSummarizer
    return cls(runtime, settings.summarizer, templates), own


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
        dates = None
        if self.templates.tables.get("summarize", {}).get("dated"):
            # Templates that date their turns also date the summary: the whole span it covers.
            previous, dates = _strip_dates(previous, turns)
        summary = self._fold(previous, list(turns), max_new, result)
        if dates:
            summary = f"[{dates}] {summary}"
        summary = self.condense(summary, max_tokens, result)
        result.content = summary
        return result

    def summarize_text(self, text: str, *, max_tokens: int) -> SummaryResult:
        """One piece of a document summarized by the model, then fitted to `max_tokens`."""
        name = "digest" if "digest" in self.templates.tables else "condense"
        result = SummaryResult(
            content="", prompt_version=self.templates.prompt_version(name), model=self.runtime.name
        )
        max_new = self._text_reply_tokens(max_tokens)
        request = self._text_request(name, text, max_tokens)
        if self.runtime.count_tokens(request) > self.request_limit(max_new):
            raise SummarizationError(
                "A piece of the document is too long for the summarizer's context; "
                "split it smaller (this is a bug in the caller)."
            )
        result.chunks = 1
        summary = self._generate(request, max_new, result)
        result.content = self.condense(summary, max_tokens, result)
        return result

    def input_limit(self, max_tokens: int) -> int | None:
        max_new = self._text_reply_tokens(max_tokens)
        name = "digest" if "digest" in self.templates.tables else "condense"
        overhead = self.runtime.count_tokens(self._text_request(name, "", max_tokens))
        return max(0, self.request_limit(max_new) - overhead)

    def _text_reply_tokens(self, max_tokens: int) -> int:
        # A document summary may use its whole target, within what the context can hold.
        return max(8, min(max_tokens, self.runtime.context_window // 4))

    def _text_request(self, name: str, text: str, max_tokens: int) -> list[ChatMessage]:
        words = max(8, int(max_tokens * 0.6))
        body = (
            self.templates.render(name, text=text, max_words=words)
            if name == "digest"
            else self.templates.render(name, summary=text, max_words=words)
        )
        return [
            {"role": "system", "content": self.templates.system_text(name)},
            {"role": "user", "content": body},
        ]

    def _request(self, previous: str | None, turns: Sequence[Turn]) -> list[ChatMessage]:
        body = self.templates.render(
            "summarize",
            previous=previous,
            turns=[
                {"role": t.role, "content": t.content, "date": _day(t.created_at)} for t in turns
            ],
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
        role, when = turns[0].role, turns[0].created_at
        parts = [
            Turn(role, " ".join(words[:middle]), when),
            Turn(role, " ".join(words[middle:]), when),
        ]
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


class FactSummarizer(ModelSummarizer):
    """Keeps the concrete facts of what it folds, whatever the model's size.

    A fold adds one dated section to the summary: the fact-bearing sentences of
    the evicted turns, picked and tidied with no model (`recursa.agent.facts`).
    When the summary would outgrow its share, sentences give way one at a time:
    a fact restated later (a new value for the same thing) first, then the
    weakest, taken from the fullest section so every span of time keeps some.
    Only then is the model asked, to condense the sentences that gave way into
    the last part of the share; its answer is checked fact by fact, kept only
    when it keeps more of them than putting sentences back verbatim would, and
    the facts it dropped are put back while the share allows. A model failure
    never fails the fold: the sentences are put back without it, and noted.
    """

    # Share of the room the picked sentences may fill before the model condenses the rest.
    HEAD_SHARE = 0.8
    # Above this score, sentences rank the same: every fact-bearing sentence counts.
    SCORE_CAP = 4.0
    # A summary of n tokens keeps at most n / this many dated lines (each has a header).
    TOKENS_PER_SECTION = 64

    def __init__(
        self,
        runtime: Runtime,
        settings: SummarizerSettings | None = None,
        templates: Templates | None = None,
        *,
        use_model: bool = True,
    ) -> None:
        super().__init__(runtime, settings, templates)
        self.use_model = use_model
        self._costs: dict[str, int] = {}

    @property
    def name(self) -> str:
        return f"facts:{self.runtime.name}"

    def fold(
        self, previous: str | None, turns: Sequence[Turn], *, max_tokens: int
    ) -> SummaryResult:
        result = SummaryResult(content="", prompt_version=self._version(), model=self.runtime.name)
        sections = F.parse_sections(previous)
        spans: list[F.Span] = []
        for turn in turns:
            role = turn.role if turn.role in ("user", "assistant") else ""
            spans.extend(F.sentences(turn.content, role=role, first=len(spans)))
        dates = F.date_range(t.created_at for t in turns)
        known = {item.text for section in sections for item in section.items}
        candidates = self._candidates(spans, known)
        if candidates:
            if sections and dates and sections[-1].dates == dates:
                sections[-1].items.extend(candidates)  # same day: one header, not two
            else:
                sections.append(F.DatedSection(dates, list(candidates)))
        # One running order over old and new sentences, so "oldest" and "in order" hold.
        count = 0
        for section in sections:
            section.items = [replace(item, order=count + i) for i, item in enumerate(section.items)]
            count += len(section.items)
        sections = self._fit(sections, max_tokens, result)
        result.content = self._final(sections, max_tokens, result, candidates)
        result.chunks = 1
        return result

    def summarize_text(self, text: str, *, max_tokens: int) -> SummaryResult:
        """The fact-bearing sentences of `text` in `max_tokens` (the model condenses overflow)."""
        result = SummaryResult(
            content="", prompt_version=self._version(), model=self.runtime.name, chunks=1
        )
        candidates = self._candidates(F.sentences(text), set())
        sections = self._fit([F.DatedSection(None, list(candidates))], max_tokens, result)
        result.content = self._final(sections, max_tokens, result, candidates)
        return result

    def input_limit(self, max_tokens: int) -> int | None:
        # The model only ever sees facts from this much text, so its request always fits.
        max_new = max(8, min(max_tokens, self.runtime.context_window // 4))
        overhead = self.runtime.count_tokens(self._facts_request("", max_tokens))
        return max(0, self.request_limit(max_new) - overhead)

    # -- picking -------------------------------------------------------------------------------

    def _version(self) -> str:
        return self.templates.prompt_version("facts")

    def _cost(self, text: str) -> int:
        cost = self._costs.get(text)
        if cost is None:
            cost = self.runtime.count_text(text) + 1  # +1: the space that joins it
            if len(self._costs) < 50_000:
                self._costs[text] = cost
        return cost

    def _size(self, sections: Sequence[F.DatedSection]) -> int:
        """About the tokens of the rendered sections (items and headers counted apart)."""
        total = 0
        for section in sections:
            if section.items:
                total += self._cost(f"[{section.dates}] User:") if section.dates else 2
                total += sum(self._cost(item.text) for item in section.items)
        return total

    def _candidates(self, spans: Sequence[F.Span], known: set[str]) -> list[F.Span]:
        """The fact-bearing sentences (tidied, deduplicated); the best few when none is."""
        scored = [(F.fact_score(s.text, s.role), s) for s in spans]
        out: list[F.Span] = []
        seen = set(known)
        for score, s in scored:
            text = F.tidy(s.text)
            if score >= F.FACT_THRESHOLD and text not in seen:
                seen.add(text)
                out.append(F.Span(text, s.start, s.end, s.role, s.order))
        if not out:
            # Nothing fact-bearing: the span still leaves a trace, its best two sentences.
            best = sorted(scored, key=lambda p: (-p[0], p[1].order))[:2]
            out = [
                F.Span(F.tidy(s.text), s.start, s.end, s.role, s.order)
                for _, s in sorted(best, key=lambda p: p[1].order)
                if F.tidy(s.text) not in known
            ]
        return out

    def _fit(
        self, sections: list[F.DatedSection], max_tokens: int, result: SummaryResult
    ) -> list[F.DatedSection]:
        """The sections within `max_tokens`: sentences give way, the model condenses them."""
        sections = [s for s in sections if s.items]
        if self._size(sections) <= max_tokens:
            return sections
        target = int(max_tokens * self.HEAD_SHARE) if self.use_model else max_tokens
        dropped: list[tuple[str | None, F.Span]] = []
        most = max(1, max_tokens // self.TOKENS_PER_SECTION)
        while self._size(sections) > target:
            if len(sections) > most:
                # Headers cost room too: two neighbouring spans share one, dated with both.
                sections = _merge_smallest_pair(sections)
                continue
            gone = self._drop_one(sections, self.SCORE_CAP)
            if gone is None:
                break
            dropped.append(gone)
        if not self.use_model or not dropped:
            return self._put_back(sections, dropped, max_tokens)
        room = max_tokens - self._size(sections) - 2
        plain = self._put_back(_copy(sections), dropped, max_tokens)
        by_plain = self._count_items(plain) - self._count_items(sections)
        try:
            written = self._condense_facts([d for _, d in dropped], room, result)
        except RecursaError as exc:
            # A failing model must not fail the summary: the sentences come back verbatim.
            result.notes.append(f"model condensation failed, facts picked without it: {exc}")
            return plain
        by_model = [(dates, d) for dates, d in dropped if F.kept(d.text, written)]
        if len(by_model) <= by_plain:
            result.notes.append(
                f"model condensation kept {len(by_model)} of {len(dropped)} facts, putting "
                f"sentences back verbatim {by_plain}: kept the verbatim ones"
            )
            return plain
        result.notes.append(f"model condensation kept {len(by_model)} of {len(dropped)} facts")
        if self._cost(written) > room:
            written = cut_to_tokens(self.runtime.count_text, written, room)
        dates = _merged_dates([d for d, _ in by_model])
        first = min(span.order for _, span in by_model)
        merged = F.DatedSection(dates, [F.Span(written, 0, 0, "", first)])
        sections = _insert_by_dates(sections, merged)
        # The check: facts the model dropped come back, best first, while the room allows.
        missing = [(d, s) for d, s in dropped if not F.kept(s.text, written)]
        return self._put_back(sections, missing, max_tokens)

    def _put_back(
        self,
        sections: list[F.DatedSection],
        dropped: list[tuple[str | None, F.Span]],
        max_tokens: int,
    ) -> list[F.DatedSection]:
        """Dropped sentences back into their sections, last dropped (best) first, while they fit."""
        for dates, span in reversed(dropped):
            home = next((s for s in sections if _within(dates, s.dates)), None)
            extra = 0 if home is not None else self._size([F.DatedSection(dates, [span])])
            extra = extra or self._cost(span.text)
            if self._size(sections) + extra > max_tokens:
                continue
            if home is None:
                home = F.DatedSection(dates, [])
                sections = _insert_by_dates(sections, home)
            home.items.append(span)
            home.items.sort(key=lambda i: i.order)
        return sections

    @staticmethod
    def _count_items(sections: Sequence[F.DatedSection]) -> int:
        return sum(len(s.items) for s in sections)

    def _final(
        self,
        sections: list[F.DatedSection],
        max_tokens: int,
        result: SummaryResult,
        candidates: Sequence[F.Span],
    ) -> str:
        if not sections and candidates:
            # Not one sentence fits whole (a very long one): the first, cut, stands for them.
            sections = [F.DatedSection(None, [candidates[0]])]
        content = F.render_sections(sections)
        while self.runtime.count_text(content) > max_tokens and self._count_items(sections) > 1:
            if self._drop_one(sections, self.SCORE_CAP) is None:
                break
            content = F.render_sections(sections)
        if self.runtime.count_text(content) > max_tokens:
            content = cut_to_tokens(self.runtime.count_text, content, max_tokens)
            result.notes.append(f"summary cut to its share of {max_tokens} tokens")
        if not content.strip():
            raise SummarizationError("There is no text to summarize.")
        return content

    def _facts_request(self, facts: str, max_tokens: int) -> list[ChatMessage]:
        return [
            {"role": "system", "content": self.templates.system_text("facts")},
            {
                "role": "user",
                "content": self.templates.render(
                    "facts", facts=facts, max_words=max(8, int(max_tokens * 0.6))
                ),
            },
        ]

    def _condense_facts(self, rest: list[F.Span], room: int, result: SummaryResult) -> str:
        if room < 16:
            raise SummarizationError("No room is left for the model's condensation.")
        max_new = max(8, min(room, self.runtime.context_window // 4))
        limit = self.request_limit(max_new)
        lines: list[str] = []
        for r in sorted(rest, key=lambda s: s.order):
            request = self._facts_request("\n".join([*lines, f"- {r.text}"]), room)
            if self.runtime.count_tokens(request) > limit:
                break  # what does not fit the request comes back verbatim or not at all
            lines.append(f"- {r.text}")
        if not lines:
            raise SummarizationError("No fact fits the summarizer's request.")
        return self._generate(self._facts_request("\n".join(lines), room), max_new, result)

    @staticmethod
    def _drop_one(
        sections: list[F.DatedSection], cap: float = 4.0
    ) -> tuple[str | None, F.Span] | None:
        """Remove the sentence that should give way first; None when none is left.

        A fact restated later with another value (same words, other names or
        numbers) goes first; then the lowest-ranked, from the fullest section
        (so each span keeps some), the oldest there.
        """
        frames: dict[tuple[str, ...], int] = {}
        position = 0
        for section in sections:
            for item in section.items:
                frames[F.frame(item.text)] = position  # the last place each frame is said
                position += 1
        worst: tuple[float, int, int, int] | None = None
        where: tuple[int, int] = (0, 0)
        position = 0
        for si, section in enumerate(sections):
            for ii, item in enumerate(section.items):
                score = min(F.fact_score(item.text, item.role), cap)
                if frames[F.frame(item.text)] > position:
                    score -= 10.0  # superseded by a later statement of the same thing
                key = (score, -len(section.items), si, ii)
                if worst is None or key < worst:
                    worst, where = key, (si, ii)
                position += 1
        if worst is None:
            return None
        si, ii = where
        section = sections[si]
        span = section.items.pop(ii)
        if not section.items:
            del sections[si]
        return section.dates, span


def _copy(sections: Sequence[F.DatedSection]) -> list[F.DatedSection]:
    return [F.DatedSection(s.dates, list(s.items)) for s in sections]


def _merge_smallest_pair(sections: list[F.DatedSection]) -> list[F.DatedSection]:
    """`sections` with the two neighbours holding the fewest sentences merged into one."""
    i = min(
        range(len(sections) - 1),
        key=lambda k: (len(sections[k].items) + len(sections[k + 1].items), k),
    )
    a, b = sections[i], sections[i + 1]
    merged = F.DatedSection(_merged_dates([a.dates, b.dates]), [*a.items, *b.items])
    return [*sections[:i], merged, *sections[i + 2 :]]


def _within(dates: str | None, outer: str | None) -> bool:
    """Whether the date range `dates` lies inside `outer` (undated only in undated)."""
    if dates is None or outer is None:
        return dates == outer
    start, end = dates.split(" to ")[0], dates.split(" to ")[-1]
    first, last = outer.split(" to ")[0], outer.split(" to ")[-1]
    return first <= start and end <= last


def _merged_dates(ranges: Sequence[str | None]) -> str | None:
    days = sorted({day for r in ranges if r for day in r.split(" to ")})
    if not days:
        return None
    return days[0] if days[0] == days[-1] else f"{days[0]} to {days[-1]}"


def _insert_by_dates(sections: list[F.DatedSection], new: F.DatedSection) -> list[F.DatedSection]:
    """`sections` with `new` placed before the first section that starts after it."""
    start = (new.dates or "").split(" to ")[0]
    for i, section in enumerate(sections):
        if start and (section.dates or "").split(" to ")[0] > start:
            return [*sections[:i], new, *sections[i:]]
    return [*sections, new]


def _day(moment: datetime | None) -> str:
    return F.date_range([moment]) or ""


def _strip_dates(previous: str | None, turns: Sequence[Turn]) -> tuple[str | None, str | None]:
    """The previous summary without its date prefix, and the dates of the whole new span."""
    first: str | None = None
    if previous:
        sections = F.parse_sections(previous)
        if sections and sections[0].dates and previous.startswith(f"[{sections[0].dates}] "):
            first = sections[0].dates.split(" to ")[0]
            previous = previous[len(sections[0].dates) + 3 :]
    dates = F.date_range(t.created_at for t in turns)
    if first and dates:
        last = dates.split(" to ")[-1]
        dates = first if first == last else f"{first} to {last}"
    return previous, dates or first


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

    def summarize_text(self, text: str, *, max_tokens: int) -> SummaryResult:
        result = self.fold(None, [Turn("summary", text)], max_tokens=max_tokens)
        result.chunks = 1
        return result

    def input_limit(self, max_tokens: int) -> int | None:
        return None


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
