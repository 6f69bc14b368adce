"""Recursive summaries of long documents: chunk, summarize each chunk, then summarize the summaries.

`summarize_document(text, summarizer, count_text=..., max_tokens=...)` splits
a text of any length into chunks that fit the summarizer's requests (at
sentence boundaries; together they cover the text exactly once), summarizes
each chunk (level 0), then groups consecutive summaries that fit one request
and summarizes each group (level 1, 2, ...) until one summary is left. The
result is a `TextSummary`: the summary, how many chunks and levels it took,
and the tree of `SummaryNode`s, each with the character span of the source it
summarizes. Each sentence of the final summary is traced back to the source
sentence it most likely came from (`sources`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field
from recursa.agent import facts as F
from recursa.agent.errors import InvalidInputError
from recursa.agent.summarize import cut_to_tokens

if TYPE_CHECKING:
    from recursa.agent.summarize import Summarizer

__all__ = ["SourceSentence", "SummaryNode", "TextSummary", "summarize_document"]

ProgressCallback = Callable[[str, float | None], None]
# A chunk is at most this many times the target long: each step shrinks by about
# this much, which small models still do faithfully; a bigger context is not used up.
CHUNK_RATIO = 8
MIN_CHUNK_TOKENS = 1024
# Token counts of sentences are summed; the sum may differ a little from the count of
# their joined text, so chunks keep this share free.
COUNT_SLACK = 0.9
_WORDS = re.compile(r"\S+\s*")


class SummaryNode(BaseModel):
    """One summary in the tree: what it says and the source span it covers."""

    level: int = Field(description="0: a chunk of the source; n: a summary of level n-1 summaries.")
    start: int = Field(description="Offset of the span's first character in the source.")
    end: int = Field(description="Offset just past the span's last character.")
    tokens: int = Field(description="The summary's length in the model's tokens.")
    summary: str
    source_tokens: int = Field(description="Tokens of what this node summarized.")
    children: list[SummaryNode] = Field(default_factory=list)

    def leaves(self) -> list[SummaryNode]:
        """The level-0 nodes under this one, in source order."""
        if not self.children:
            return [self]
        return [leaf for child in self.children for leaf in child.leaves()]


class SourceSentence(BaseModel):
    """A sentence of the final summary and the source sentence it most likely came from."""

    text: str
    start: int | None = Field(description="Source offset of the matching sentence (None: none).")
    end: int | None = None


class TextSummary(BaseModel):
    """A document's summary and how it was made."""

    summary: str
    tokens: int
    max_tokens: int
    source_chars: int
    source_tokens: int
    chunks: int = Field(description="Level-0 chunks the source was split into.")
    levels: int = Field(description="Levels of the tree (1: the chunks' summaries only).")
    calls: int = Field(description="Model calls made.")
    model: str
    method: str = Field(description="The summarizer's prompt version, e.g. 'facts/v2'.")
    duration_s: float
    notes: list[str] = Field(default_factory=list)
    sources: list[SourceSentence] = Field(default_factory=list)
    tree: SummaryNode


def summarize_document(
    text: str,
    summarizer: Summarizer,
    *,
    count_text: Callable[[str], int],
    max_tokens: int,
    model: str = "",
    chunk_tokens: int | None = None,
    progress: ProgressCallback | None = None,
) -> TextSummary:
    """Summarize `text` recursively into at most `max_tokens` tokens (see the module doc).

    `count_text` counts in the model's tokens; `chunk_tokens` caps a chunk
    (default: CHUNK_RATIO times the target, within what the summarizer's
    requests hold). InvalidInputError for an empty text or a target under 16.
    """
    if not text.strip():
        raise InvalidInputError("The text to summarize is empty; give a file or pipe some text.")
    if max_tokens < 16:
        raise InvalidInputError(f"A summary target of {max_tokens} tokens is too small; use 16+.")
    start_time = time.perf_counter()
    notes: list[str] = []
    limit = summarizer.input_limit(max_tokens)
    chunk = chunk_tokens or max(CHUNK_RATIO * max_tokens, MIN_CHUNK_TOKENS)
    if limit is not None:
        chunk = min(chunk, limit)
    if chunk < 32:
        raise InvalidInputError(
            f"The model's context cannot hold a chunk of text and a {max_tokens}-token summary; "
            "lower --tokens."
        )
    # A node must leave room for at least two of its kind in one request.
    node_target = max(8, min(max_tokens, chunk // 2))
    if node_target < max_tokens:
        notes.append(f"each step summarizes to {node_target} tokens (the context is small)")
    spans = F.sentences(text)
    costs = [count_text(s.text) for s in spans]
    source_tokens = sum(costs)
    state = _Run(summarizer, count_text, progress)
    pieces = _chunks(text, spans, costs, int(chunk * COUNT_SLACK), count_text)
    state.expected = len(pieces) + _parents(len(pieces), max(2, chunk // (node_target + 2)))
    if len(pieces) == 1 and source_tokens <= max_tokens and count_text(text) <= max_tokens:
        # The text already fits its target: it is its own summary.
        notes.append("the text already fits the target; it is its own summary")
        tokens = count_text(text)
        root = SummaryNode(
            level=0, start=0, end=len(text), tokens=tokens, summary=text, source_tokens=tokens
        )
    else:
        nodes = [state.node(0, a, b, text[a:b], node_target) for a, b in pieces]
        level = 0
        while len(nodes) > 1:
            level += 1
            nodes = [
                state.parent(level, group, node_target) if len(group) > 1 else group[0]
                for group in _groups(nodes, chunk, count_text)
            ]
        root = nodes[0]
    if root.tokens > max_tokens:
        cut = cut_to_tokens(count_text, root.summary, max_tokens)
        root = root.model_copy(update={"summary": cut, "tokens": count_text(cut)})
        notes.append(f"summary cut to {max_tokens} tokens")
    notes.extend(dict.fromkeys(state.notes))
    return TextSummary(
        summary=root.summary,
        tokens=root.tokens,
        max_tokens=max_tokens,
        source_chars=len(text),
        source_tokens=source_tokens,
        chunks=len(root.leaves()),
        levels=root.level + 1,
        calls=state.calls,
        model=model,
        method=state.version or "verbatim",
        duration_s=round(time.perf_counter() - start_time, 3),
        notes=notes,
        sources=_sources(root.summary, text, spans),
        tree=root,
    )


class _Run:
    """The summarizer calls of one document, counted and reported."""

    def __init__(
        self,
        summarizer: Summarizer,
        count_text: Callable[[str], int],
        progress: ProgressCallback | None,
    ) -> None:
        self.summarizer = summarizer
        self.count_text = count_text
        self.progress = progress
        self.calls = 0
        self.done = 0
        self.expected = 1
        self.version = ""
        self.notes: list[str] = []

    def node(self, level: int, start: int, end: int, source: str, target: int) -> SummaryNode:
        if self.progress is not None:
            where = f"chunk {self.done + 1}" if level == 0 else f"level {level} summary"
            self.progress(
                f"summarizing {where} (characters {start}-{end})", self.done / self.expected
            )
        result = self.summarizer.summarize_text(source, max_tokens=target)
        self.calls += result.calls
        self.version = result.prompt_version
        self.notes.extend(n for n in result.notes if "cut" in n)
        self.done += 1
        return SummaryNode(
            level=level,
            start=start,
            end=end,
            tokens=self.count_text(result.content),
            summary=result.content,
            source_tokens=self.count_text(source),
        )

    def parent(self, level: int, group: Sequence[SummaryNode], target: int) -> SummaryNode:
        joined = "\n\n".join(n.summary for n in group)
        node = self.node(level, group[0].start, group[-1].end, joined, target)
        return node.model_copy(update={"children": list(group)})


def _parents(nodes: int, fanout: int) -> int:
    """About how many summaries of summaries `nodes` chunks need (for progress only)."""
    total = 0
    while nodes > 1:
        nodes = -(-nodes // fanout)
        total += nodes
    return total


def _chunks(
    text: str,
    spans: Sequence[F.Span],
    costs: Sequence[int],
    limit: int,
    count_text: Callable[[str], int],
) -> list[tuple[int, int]]:
    """Contiguous (start, end) character spans covering `text` exactly, each within `limit`.

    Chunks end at sentence boundaries; a sentence longer than `limit` is split
    at word boundaries. The space between two sentences goes with the first.
    """
    cuts: list[int] = [0]
    used = 0
    for span, cost in zip(spans, costs, strict=True):
        if cost > limit:
            # One sentence longer than a chunk: split it by words.
            if span.start > cuts[-1]:
                cuts.append(span.start)
            cuts.extend(_word_cuts(text, span.start, span.end, limit, count_text))
            used = 0
            continue
        if used + cost > limit and span.start > cuts[-1]:
            cuts.append(span.start)
            used = 0
        used += cost
    bounds = sorted(set(cuts))
    return [(a, b) for a, b in zip(bounds, [*bounds[1:], len(text)], strict=True) if b > a]


def _word_cuts(
    text: str, start: int, end: int, limit: int, count_text: Callable[[str], int]
) -> list[int]:
    """Cut points inside text[start:end] (after `start`) so each piece fits `limit`.

    Words are counted one by one (linear in the sentence); a single word longer
    than `limit` is cut every `limit` characters (a token covers one character
    at least, so such a piece fits).
    """
    cuts: list[int] = []
    piece_start = start
    used = 0
    for m in _WORDS.finditer(text, start, end):
        cost = count_text(m.group(0))
        if cost > limit:
            for cut in range(m.start(), m.end(), limit):
                if cut > piece_start:
                    cuts.append(cut)
                    piece_start = cut
            used = count_text(text[piece_start : m.end()])
            continue
        if used + cost > limit and m.start() > piece_start:
            cuts.append(m.start())
            piece_start = m.start()
            used = 0
        used += cost
    return cuts


def _groups(
    nodes: Sequence[SummaryNode], limit: int, count_text: Callable[[str], int]
) -> list[list[SummaryNode]]:
    """Consecutive nodes whose joined summaries fit one request (two at least, when they can)."""
    groups: list[list[SummaryNode]] = []
    current: list[SummaryNode] = []
    used = 0
    for node in nodes:
        cost = node.tokens + 2
        if current and used + cost > limit * COUNT_SLACK:
            groups.append(current)
            current, used = [], 0
        current.append(node)
        used += cost
    if current:
        groups.append(current)
    if len(groups) > 1 and len(groups[-1]) == 1:
        # A lone last node joins the group before it when the pair still fits.
        last = groups[-1][0]
        before = groups[-2]
        if sum(n.tokens + 2 for n in before) + last.tokens + 2 <= limit:
            before.append(last)
            groups.pop()
    return groups


def _sources(summary: str, text: str, spans: Sequence[F.Span]) -> list[SourceSentence]:
    """Each sentence of `summary` with the source sentence sharing most of its words."""
    index: dict[str, list[int]] = {}
    words_of: list[set[str]] = []
    for i, span in enumerate(spans):
        hard, soft = F.terms(span.text)
        words = hard | soft
        words_of.append(words)
        for w in words:
            index.setdefault(w, []).append(i)
    out: list[SourceSentence] = []
    for sentence in F.sentences(summary):
        exact = text.find(sentence.text)
        if exact >= 0:
            out.append(
                SourceSentence(text=sentence.text, start=exact, end=exact + len(sentence.text))
            )
            continue
        hard, soft = F.terms(sentence.text)
        words = hard | soft
        votes: dict[int, int] = {}
        for w in words:
            for i in index.get(w, ())[:500]:
                votes[i] = votes.get(i, 0) + 1
        best = max(votes, key=lambda i: (votes[i] / max(1, len(words_of[i])), votes[i]), default=-1)
        if best >= 0 and words and votes[best] * 2 >= min(len(words), len(words_of[best])):
            span = spans[best]
            out.append(SourceSentence(text=sentence.text, start=span.start, end=span.end))
        else:
            out.append(SourceSentence(text=sentence.text, start=None, end=None))
    return out
