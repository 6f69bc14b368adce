"""Fact-bearing sentences: find, rank, shorten and check them, with no model.

The fact-keeping summarizer (`recursa.agent.summarize.FactSummarizer`) builds
on these pure functions: `sentences` splits a text into sentences with their
character offsets; `fact_score` rates how much concrete fact a sentence holds
(names, numbers, dates, places, decisions, preferences, events); `tidy` drops
the discourse filler around a fact; `kept` tells whether a text still states a
fact (its numbers and names, and most of its content words); `DatedSection`
is one line of a dated summary, "[2024-03-04 to 2024-03-06] User: ...".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "FACT_THRESHOLD",
    "DatedSection",
    "Span",
    "date_range",
    "frame",
    "fact_score",
    "kept",
    "parse_sections",
    "render_sections",
    "select",
    "sentences",
    "tidy",
]


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# A sentence scoring at least this much is treated as fact-bearing.
FACT_THRESHOLD = 2.0

# A sentence ends at ., ! or ? followed by a space or the end, or at a line break;
# "3.5" and "e.g.x" stay whole.
_SENTENCE = re.compile(r"\S[^\n]*?(?:[.!?]+(?=[\s\"')\]]|$)|(?=\n)|$)")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d[\d:.,/-]*\d|\d")
_NUMBER = re.compile(r"\d")
_NUMBER_WORDS = _wordset(
    "two three four five six seven eight nine ten eleven twelve fifteen twenty thirty "
    "forty fifty hundred thousand million half dozen"
)
_MONTHS = _wordset(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
_WEEKDAYS = _wordset("monday tuesday wednesday thursday friday saturday sunday")
# Capitalised words that say nothing by themselves.
_COMMON_CAPS = _wordset("i i'm i've i'll i'd ok okay oh hi hey yes no thanks the a an and but so")
# People a conversation is about: a sentence naming one is often a fact about them.
_RELATIONS = re.compile(
    r"\bmy (?:\w+ )?(?:sister|brother|sis|bro|mother|mum|mom|father|dad|parents?|son|daughter|"
    r"kids?|children|wife|husband|partner|boyfriend|girlfriend|fianc[eé]e?|aunt|uncle|"
    r"cousin|niece|nephew|grand\w+|godmother|godfather|friend|mate|buddy|pal|neighbou?r|"
    r"boss|manager|colleague|coworker|landlord|landlady|flatmate|roommate|doctor|dentist|"
    r"teacher|tutor|coach|accountant|lawyer|postman|vet|therapist|in-laws?|family|team)\b",
    re.IGNORECASE,
)
_POSSESSIVE = re.compile(r"\b(?:my|our|his|her|their) \w+(?: \w+)?'s\b", re.IGNORECASE)
# Phrases that state who or what something is, where, how much, what was decided or liked.
_CUES = re.compile(
    r"\b(?:name is|names are|named|called|goes by|known as|works? (?:as|at|for)|job|"
    r"profession|lives? in|living in|moved to|moving to|rents?|born|birthday|anniversary|"
    r"address|code|password|pin|number|phone|email|keep (?:my|the|our)|kept in|stored? in|"
    r"hobby|hobbies|spends?|learning|studying|plays? the|prefers?|preference|favou?rite|"
    r"loves?|likes?|enjoys?|hates?|can't stand|cannot stand|nothing beats|allergic|"
    r"vegetarian|vegan|avoid|steer clear|decided|decision|agreed|chose|choose|will|"
    r"going to|plan(?:s|ned|ning)? to|booked|scheduled|appointment|meeting|deadline|due|"
    r"costs?|paid|price|budget|salary|owes?|married|engaged|divorced|pregnant|adopted|"
    r"bought|purchased|sold|got (?:myself|a|an|the)|won|lost|passed|failed|graduated|"
    r"promot\w+|hired|fired|quit|retired|started|finished|arrived|landed|broke|crashed|"
    r"diagnosed|injured|surgery|tooth|moved)\b",
    re.IGNORECASE,
)
_FILLER_START = re.compile(
    r"^(?:(?:by the way|oh|well|so|anyway|also|actually|honestly|basically|note this|"
    r"for the record|just so you know|before i forget|fun fact|guess what|hey|ok|okay|"
    r"right|listen|you know what|as i said|like i said)\s*[,:;!.\-]*\s+)+",
    re.IGNORECASE,
)
_FILLER_END = re.compile(
    r",?\s*(?:for what it's worth|these days|to be honest|if you must know|by the way|"
    r"you know)(?=[.!?]*$)",
    re.IGNORECASE,
)
_STOP = _wordset(
    "a an the and or but so of to in on at for with by from as is are was were be been being "
    "am do does did have has had having i me my mine we our you your he him his she her they "
    "them their it its this that these those there here what which who whom whose when where "
    "why how not no yes very really just also then than too can could will would shall should "
    "may might must about into over after before again once all any some more most such only "
    "own same other each few both up down out off now new one"
)
_ROLE_LABEL = re.compile(r"^(user|assistant|system): ", re.IGNORECASE)
_SECTION = re.compile(r"^\[(?P<dates>[^\]\n]{1,40})\] ?(?P<body>.*)$")


@dataclass(frozen=True)
class Span:
    """One sentence of a source text, with its character offsets and speaker."""

    text: str
    start: int
    end: int
    role: str = ""
    order: int = 0


def sentences(text: str, *, role: str = "", offset: int = 0, first: int = 0) -> list[Span]:
    """The sentences of `text` in order; offsets are into the text (plus `offset`)."""
    out: list[Span] = []
    for i, m in enumerate(_SENTENCE.finditer(text)):
        piece = m.group(0).rstrip()
        if piece:
            start = m.start() + offset
            out.append(Span(piece, start, start + len(piece), role, first + i))
    return out


def fact_score(sentence: str, role: str = "") -> float:
    """How much concrete fact a sentence states (≥ FACT_THRESHOLD: fact-bearing).

    Numbers, names (capitalised words inside the sentence), dates, a relation
    ("my sister"), and phrases that state an attribute, a place, a preference,
    a decision or an event each add; questions and an assistant's turns subtract
    (an assistant mostly echoes or asks).
    """
    words = _WORD.findall(sentence)
    if not words or all(_dateish(w) for w in words):
        return 0.0  # nothing, or a bare date (a heading): it dates facts, it is not one
    score = 0.0
    numbers = sum(1 for w in words if _NUMBER.search(w))
    score += 2.0 * min(numbers, 2)
    score += 1.0 * min(sum(1 for w in words if w.lower() in _NUMBER_WORDS), 1)
    names = 0
    dates = 0
    for i, w in enumerate(words):
        low = w.lower()
        if (low in _MONTHS and w[0].isupper() and low != "may") or low in _WEEKDAYS:
            dates += 1
        elif i > 0 and w[0].isupper() and low not in _COMMON_CAPS:
            names += 1
    score += 1.5 * min(names, 2) + 1.5 * min(dates, 1)
    score += 1.5 if _RELATIONS.search(sentence) else 0.0
    score += 1.0 if _POSSESSIVE.search(sentence) else 0.0
    score += 2.0 * min(len(_CUES.findall(sentence)), 2)
    if sentence.rstrip().endswith("?"):
        score -= 2.5
    if len(words) < 4:
        score -= 1.0
    if role == "assistant":
        score -= 1.5
    return score


def _dateish(word: str) -> bool:
    low = word.lower()
    return (
        bool(_NUMBER.search(word))
        or low in _MONTHS
        or low in _WEEKDAYS
        or low in ("of", "the", "on", "st", "nd", "rd", "th")
    )


def tidy(sentence: str) -> str:
    """The sentence without discourse filler around its fact ("By the way, ...")."""
    text = _FILLER_START.sub("", sentence.strip())
    text = _FILLER_END.sub("", text)
    if not text:
        text = sentence.strip()
    if text[-1] not in ".!?…\"')":
        text += "."  # so that sentences joined in a summary split again where they were
    return text[0].upper() + text[1:]


def terms(text: str) -> tuple[set[str], set[str]]:
    """(names and numbers, other content words) of a text, lowercased."""
    hard: set[str] = set()
    soft: set[str] = set()
    for i, w in enumerate(_WORD.findall(text)):
        low = _base(w)
        if _NUMBER.search(w) or (i > 0 and w[0].isupper() and low not in _COMMON_CAPS):
            hard.add(low)
        elif low not in _STOP and len(low) > 2:
            soft.add(low)
    return hard, soft


def frame(text: str) -> tuple[str, ...]:
    """The words of a statement without its names and numbers: what it is about.

    Two statements with the same frame and other values ("my postman's name is
    Jo" / "... is Robin") say the same thing with a new value.
    """
    hard, _ = terms(text)
    return tuple(_base(w) for w in _WORD.findall(text) if _base(w) not in hard)


def _base(word: str) -> str:
    """A word lowercased, without a possessive ending ("Ada's" -> "ada")."""
    low = word.lower()
    return low[:-2] if low.endswith("'s") else low


def kept(fact: str, text: str) -> bool:
    """Whether `text` still states `fact`: all its names and numbers, most content words."""
    hard, soft = terms(fact)
    have = {_base(w) for w in _WORD.findall(text)}
    if not hard <= have:
        return False
    if not soft:
        return bool(hard)
    return len(soft & have) >= max(1, (len(soft) + 1) // 2)


def select(
    spans: Sequence[Span],
    scores: Sequence[float],
    room: int,
    cost: Callable[[Span], int],
) -> list[int]:
    """Indexes of the best-scoring spans that fit in `room` (by `cost`), in source order.

    Greedy by score (earlier first on ties); a span too long for what is left
    is skipped so a shorter one can still come in.
    """
    order = sorted(range(len(spans)), key=lambda i: (-scores[i], i))
    chosen: list[int] = []
    used = 0
    for i in order:
        c = cost(spans[i])
        if used + c <= room:
            chosen.append(i)
            used += c
    return sorted(chosen)


# --- dated sections ------------------------------------------------------------------------


@dataclass
class DatedSection:
    """One line of a dated summary: the dates of the folded span and what it said."""

    dates: str | None
    items: list[Span]

    def render(self) -> str:
        body = join_spans(self.items)
        return f"[{self.dates}] {body}" if self.dates else body


def join_spans(items: Iterable[Span]) -> str:
    """Sentences joined, with a speaker label wherever the speaker changes."""
    parts: list[str] = []
    current = ""
    for item in items:
        text = item.text
        if item.role and item.role != current:
            text = f"{item.role.capitalize()}: {text}"
            current = item.role
        parts.append(text)
    return " ".join(parts)


def date_range(moments: Iterable[datetime | None]) -> str | None:
    """ "2024-03-04", "2024-03-04 to 2024-03-06", or None when nothing is dated."""
    days = sorted({(m.astimezone(UTC) if m.tzinfo is not None else m).date() for m in moments if m})
    if not days:
        return None
    if days[0] == days[-1]:
        return days[0].isoformat()
    return f"{days[0].isoformat()} to {days[-1].isoformat()}"


def parse_sections(summary: str | None) -> list[DatedSection]:
    """The sections of a summary this module rendered; other text is one undated section."""
    out: list[DatedSection] = []
    for line in (summary or "").splitlines():
        line = line.strip()
        if not line:
            continue
        m = _SECTION.match(line)
        dates, body = (m.group("dates"), m.group("body")) if m else (None, line)
        items: list[Span] = []
        role = ""
        for span in sentences(body):
            text = span.text
            label = _ROLE_LABEL.match(text)
            if label:
                role = label.group(1).lower()
                text = text[label.end() :]
            items.append(Span(text, span.start, span.end, role, span.order))
        out.append(DatedSection(dates, items))
    return out


def render_sections(sections: Sequence[DatedSection]) -> str:
    """The summary text of `sections`, one line each (empty sections left out)."""
    return "\n".join(s.render() for s in sections if s.items)
