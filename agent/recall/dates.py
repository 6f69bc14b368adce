"""Dates named in a question, as the time spans whose messages recall should look at.

"What did I tell you on 23 March?" shares no word with what was said that
day; the date itself is the clue. This reads the common English ways of
writing a calendar date ("23 March", "Saturday 23 March 2024", "March 23rd",
"2024-03-23") into whole UTC days. A date without a year means that day in
every year the conversation spans.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

__all__ = ["NamedDay", "day_spans", "named_days", "without_dates"]

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(\d{4}))?"
_DAY_MONTH = re.compile(rf"\b{_DAY}(?:\s+of)?\s+({_MONTH})\.?\b{_YEAR}", re.IGNORECASE)
_MONTH_DAY = re.compile(rf"\b({_MONTH})\.?\s+{_DAY}\b{_YEAR}", re.IGNORECASE)
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")

# (year or None, month, day)
NamedDay = tuple[int | None, int, int]


def named_days(text: str) -> list[NamedDay]:
    """The calendar days `text` names, in order of appearance, without repeats."""
    found: list[tuple[int, NamedDay]] = []
    for m in _DAY_MONTH.finditer(text):
        year = int(m.group(3)) if m.group(3) else None
        found.append((m.start(), (year, _MONTHS[m.group(2).lower()], int(m.group(1)))))
    for m in _MONTH_DAY.finditer(text):
        year = int(m.group(3)) if m.group(3) else None
        found.append((m.start(), (year, _MONTHS[m.group(1).lower()], int(m.group(2)))))
    for m in _ISO.finditer(text):
        found.append((m.start(), (int(m.group(1)), int(m.group(2)), int(m.group(3)))))
    out: list[NamedDay] = []
    for _, day in sorted(found):
        if day not in out and _valid(day):
            out.append(day)
    return out


def without_dates(text: str) -> str:
    """`text` with the dates it names removed (they are searched by date, not as words)."""
    for pattern in (_DAY_MONTH, _MONTH_DAY, _ISO):
        text = pattern.sub(" ", text)
    return text


def day_spans(days: Iterable[NamedDay], years: Iterable[int]) -> list[tuple[datetime, datetime]]:
    """Whole UTC days [start, end) for `days`; a day without a year is taken in each of `years`."""
    spans: list[tuple[datetime, datetime]] = []
    candidates = sorted(set(years))
    for year, month, day in days:
        for y in [year] if year is not None else candidates:
            try:
                start = datetime(y, month, day, tzinfo=UTC)
            except ValueError:  # 29 February in a common year
                continue
            span = (start, start + timedelta(days=1))
            if span not in spans:
                spans.append(span)
    return spans


def _valid(day: NamedDay) -> bool:
    _, month, number = day
    return 1 <= month <= 12 and 1 <= number <= 31
