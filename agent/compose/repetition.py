"""Degenerate-repetition detection for compositions, and the text-diversity measures.

Small models loop: the same sentence comes back step after step. `RepetitionGuard`
watches each new step against the text before it and escalates the sampler's
controls (repetition penalty, then no-repeat n-gram blocking) when a step mostly
re-uses n-grams already written; when a step still loops at the strongest
level, it says the composition cannot recover. Everything here is pure (words
in, verdicts out), so it is tested without a model; `distinct_n` and
`longest_repeated_ngram` are the measures the composition benchmark reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: the unit repetition is measured in."""
    return [w.lower() for w in _WORD.findall(text)]


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(tokens: Sequence[str], n: int) -> float:
    """Distinct n-grams / all n-grams (1.0: nothing repeats; near 0: one loop). 0 if none."""
    grams = ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_fraction(new: Sequence[str], context: Sequence[str], n: int) -> float:
    """The share of `new`'s n-grams already seen in `context` or earlier in `new` itself."""
    grams = ngrams(new, n)
    if not grams:
        return 0.0
    seen = set(ngrams(context, n))
    repeated = 0
    for gram in grams:
        if gram in seen:
            repeated += 1
        seen.add(gram)
    return repeated / len(grams)


def longest_repeated_ngram(tokens: Sequence[str]) -> int:
    """Length of the longest run of tokens that occurs at least twice (occurrences may overlap).

    Binary search on the length with a rolling hash; hash hits are verified, so
    the answer is exact.
    """
    ids = _intern(tokens)
    lo, hi = 0, max(0, len(ids) - 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _has_repeat(ids, mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _intern(tokens: Sequence[str]) -> list[int]:
    table: dict[str, int] = {}
    return [table.setdefault(t, len(table) + 1) for t in tokens]


def _has_repeat(ids: Sequence[int], length: int) -> bool:
    if length == 0:
        return True
    if length > len(ids) - 1:
        return False
    base, mod = 1_000_003, (1 << 61) - 1
    power = pow(base, length, mod)
    h = 0
    for i in range(length):
        h = (h * base + ids[i]) % mod
    seen: dict[int, list[int]] = {h: [0]}
    for start in range(1, len(ids) - length + 1):
        h = (h * base + ids[start + length - 1] - ids[start - 1] * power) % mod
        starts = seen.setdefault(h, [])
        window = ids[start : start + length]
        if any(ids[s : s + length] == window for s in starts):
            return True
        starts.append(start)
    return False


@dataclass(frozen=True)
class Level:
    """One escalation step of the sampler controls."""

    repetition_penalty: float
    no_repeat_ngram_size: int


@dataclass(frozen=True)
class RepetitionSettings:
    """How a composition watches for loops and responds to them.

    A step is *repetitive* when at least `threshold` of its `n`-grams (words)
    already occur in the last `context_words` words before it or earlier in
    the step. Each repetitive step raises the control level (see `levels`);
    a repetitive step at the last level stops the composition ("repetition").
    After `cooldown` clean steps the level goes down one.
    """

    enabled: bool = True
    n: int = 4
    threshold: float = 0.5
    min_ngrams: int = 6
    context_words: int = 600
    cooldown: int = 2
    levels: tuple[Level, ...] = field(default_factory=lambda: (Level(1.3, 4), Level(1.6, 3)))

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"repetition n must be >= 1, got {self.n}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"repetition threshold must be in (0, 1], got {self.threshold}")
        if self.min_ngrams < 1 or self.context_words < 0 or self.cooldown < 1:
            raise ValueError("min_ngrams and cooldown must be >= 1, context_words >= 0")
        if not self.levels:
            raise ValueError("at least one control level is needed")
        for level in self.levels:
            penalty, size = level.repetition_penalty, level.no_repeat_ngram_size
            if not 1.0 <= penalty <= 3.0 or not 0 <= size <= 16:
                raise ValueError(f"bad control level {level}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "n": self.n,
            "threshold": self.threshold,
            "min_ngrams": self.min_ngrams,
            "context_words": self.context_words,
            "cooldown": self.cooldown,
            "levels": [[lv.repetition_penalty, lv.no_repeat_ngram_size] for lv in self.levels],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RepetitionSettings:
        values = dict(data)
        raw_levels = values.pop("levels", None)
        levels = (
            tuple(Level(float(p), int(k)) for p, k in raw_levels)
            if raw_levels is not None
            else cls().levels
        )
        return cls(levels=levels, **values)


Action = Literal["ok", "escalate", "stop"]


@dataclass(frozen=True)
class Verdict:
    """What the guard concluded about one step, and the control level for the next one."""

    action: Action
    repeated: float
    level: int
    calm: int


@dataclass
class RepetitionGuard:
    """Watches steps for loops; `level` (0 = off) names the controls the next step uses."""

    settings: RepetitionSettings = field(default_factory=RepetitionSettings)
    level: int = 0
    calm: int = 0
    _context: list[str] = field(default_factory=list)

    def remember(self, text: str) -> None:
        """Add text that precedes the next step (the opening, or steps read back on resume)."""
        self._context.extend(words(text))
        self._trim()

    def _trim(self) -> None:
        keep = self.settings.context_words
        if len(self._context) > keep:
            del self._context[: len(self._context) - keep]

    def observe(self, text: str) -> Verdict:
        """Judge a finished step, then remember it as context for the next one."""
        s = self.settings
        new = words(text)
        fraction = repeated_fraction(new, self._context, s.n)
        judged = len(new) - s.n + 1 >= s.min_ngrams
        self._context.extend(new)
        self._trim()
        if not s.enabled:
            return Verdict("ok", fraction, 0, 0)
        if judged and fraction >= s.threshold:
            self.calm = 0
            if self.level >= len(s.levels):
                return Verdict("stop", fraction, self.level, self.calm)
            self.level += 1
            return Verdict("escalate", fraction, self.level, self.calm)
        self.calm += 1
        if self.level > 0 and self.calm >= s.cooldown:
            self.level -= 1
            self.calm = 0
        return Verdict("ok", fraction, self.level, self.calm)

    def controls(self) -> Level | None:
        """The sampler controls the next step must use (None: the base parameters)."""
        if not self.settings.enabled or self.level == 0:
            return None
        return self.settings.levels[self.level - 1]
