"""Recalled messages as short excerpts: the sentences that matched, within a token limit.

A long message recalled for one fact would take the recall share for itself;
cutting it to the sentences that hold the query's words (in their order, with
"…" where text was left out) lets more distinct hits fit. A message with no
matching sentence (a semantic hit) keeps its opening sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from recursa.agent.planning.plan import PromptCounter, excerpt

__all__ = ["sentence_excerpt", "sentences"]

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
_WORD = re.compile(r"\w+", re.UNICODE)
_GAP = " …"


def sentences(text: str) -> list[str]:
    """`text` split into sentences (line breaks end one too), stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def sentence_excerpt(
    counter: PromptCounter, text: str, terms: Sequence[str], max_tokens: int
) -> str:
    """`text` itself when it fits `max_tokens`; otherwise its matching sentences that fit.

    Sentences that contain a term come first in priority (more terms first), then
    the others in order; the chosen ones are shown in their original order. A
    single sentence longer than the limit is cut at a word boundary.
    """
    if counter.count_text(text) <= max_tokens:
        return text
    parts = sentences(text)
    if not parts:
        return excerpt(counter, text, max_tokens)
    wanted = {t.lower() for t in terms}

    def hits(sentence: str) -> int:
        return len({w.lower() for w in _WORD.findall(sentence)} & wanted)

    order = sorted(range(len(parts)), key=lambda i: (-hits(parts[i]), i))
    chosen: list[int] = []
    for i in order:
        trial = sorted([*chosen, i])
        if counter.count_text(_join(parts, trial)) <= max_tokens:
            chosen = trial
        elif not chosen:
            return excerpt(counter, parts[i], max_tokens)
    return _join(parts, chosen)


def _join(parts: Sequence[str], chosen: Sequence[int]) -> str:
    out: list[str] = []
    previous = -1
    for i in chosen:
        if out and i != previous + 1:
            out.append("…")
        out.append(parts[i])
        previous = i
    text = " ".join(out)
    return text + (_GAP if chosen and chosen[-1] != len(parts) - 1 else "")
