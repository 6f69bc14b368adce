"""Documents with planted facts, seeded: a diary of everyday notes of a chosen length.

`document(tokens, count_text, seed)` writes dated diary entries made of
everyday sentences (what was done, the weather, opinions), with, spread evenly
through it, `PLANTED` facts (a relation's name, job, city or hobby, a code, where
something is kept, a dated decision, a purchase), each with one answer keyword.
Facts about other people that are never asked about are mixed in at about one
per `DISTRACTOR_EVERY` tokens, so a summary cannot keep every sentence that
looks like a fact. Nothing is downloaded; the same seed gives the same text.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from benchmarks.fidelity import vocabulary as v

PLANTED = 10
DISTRACTOR_EVERY = 1500
FIRST_DAY = date(2024, 5, 6)
DECISIONS = (
    ("greenhouse", "build a greenhouse at the end of the garden"),
    ("Lisbon", "spend the summer holiday in Lisbon"),
    ("solar", "put solar panels on the roof"),
    ("piano", "sell the old piano"),
    ("allotment", "give up the allotment"),
)


@dataclass(frozen=True)
class Fact:
    """A planted fact: the sentence, the word that shows it, where it is in the text."""

    sentence: str
    keyword: str
    offset: int


@dataclass(frozen=True)
class Document:
    text: str
    facts: tuple[Fact, ...]
    tokens: int


def _planted(rng: random.Random) -> list[tuple[str, str]]:
    """PLANTED (sentence, keyword) pairs, each about a different subject."""
    relations = rng.sample(v.RELATIONS, 6)
    names = rng.sample(v.NAMES, 2)
    cities = rng.sample(v.CITIES, 2)
    jobs = rng.sample(v.JOBS, 1)
    hobbies = rng.sample(v.HOBBIES, 1)
    out = [
        (f"My {relations[0].word}'s name is {names[0]}.", names[0]),
        (f"{relations[1].phrase.capitalize()} goes by {names[1]}, for what it's worth.", names[1]),
        (f"My {relations[2].word} moved to {cities[0]} last {rng.choice(v.MONTHS)}.", cities[0]),
        (f"{relations[3].phrase.capitalize()} now rents a place in {cities[1]}.", cities[1]),
        (f"My {relations[4].word} works as a {jobs[0][1]} these days.", jobs[0][0]),
        (f"My {relations[5].word}'s big hobby is {hobbies[0][1]}.", hobbies[0][0]),
    ]
    thing = rng.choice(v.THINGS)
    code = str(rng.randint(1000, 9999))
    out.append((f"The code for my {thing} is {code}.", code))
    item = rng.choice(v.ITEMS)
    keyword, place = rng.choice(v.PLACES)
    out.append((f"I keep my {item} in the {place}.", keyword))
    statement, _question, values = rng.choice(v.SELF_PARAPHRASES)
    value = rng.choice(values)
    out.append((statement.format(value=value), value))
    word, decision = rng.choice(DECISIONS)
    out.append((f"After a long talk we decided to {decision}.", word))
    rng.shuffle(out)
    return out[:PLANTED]


def _filler(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45:
        return f"{rng.choice(v.TIMES)} {rng.choice(v.ACTIVITIES)}."
    if roll < 0.8:
        return rng.choice(v.OBSERVATIONS)
    if roll < 0.92:
        return f"My verdict on {rng.choice(v.TOPICS)}: {rng.choice(v.OPINIONS)}."
    rel = rng.choice(v.RELATIONS).word
    return v.RELATION_CHAT.format(meal=rng.choice(v.MEALS), rel=rel, topic=rng.choice(v.SMALL_TALK))


def _distractor(rng: random.Random) -> str:
    person = rng.choice(v.OTHER_PEOPLE)
    attribute = rng.choice(("name", "job", "city", "hobby"))
    value = rng.choice(v.OTHER_VALUES[attribute])
    if attribute == "name":
        return f"My {person}'s name is {value}."
    if attribute == "job":
        return f"My {person} works as a {value} now."
    if attribute == "city":
        return f"My {person} moved to {value}."
    return f"My {person}'s big hobby is {value}."


def document(tokens: int, count_text: Callable[[str], int], seed: int = 11) -> Document:
    """A diary of about `tokens` tokens (by `count_text`) with PLANTED facts spread through it."""
    rng = random.Random(seed * 1000 + tokens)
    planted = _planted(rng)
    # Where each fact goes: evenly spread, by token position.
    marks = [int(tokens * (i + 0.5) / len(planted)) for i in range(len(planted))]
    parts: list[str] = []
    facts: list[Fact] = []
    used = 0
    offset = 0
    day = FIRST_DAY
    since_distractor = 0
    while used < tokens:
        heading = f"{day.strftime('%A')} {day.day} {day.strftime('%B %Y')}.\n"
        entry: list[str] = []
        for _ in range(rng.randint(6, 12)):
            if marks and used >= marks[0]:
                sentence, keyword = planted[len(facts)]
                marks.pop(0)
                facts.append(Fact(sentence, keyword, -1))
            elif since_distractor >= DISTRACTOR_EVERY:
                sentence, since_distractor = _distractor(rng), 0
            else:
                sentence = _filler(rng)
            cost = count_text(sentence) + 1
            used += cost
            since_distractor += cost
            entry.append(sentence)
        paragraph = heading + " ".join(entry) + "\n\n"
        parts.append(paragraph)
        offset += len(paragraph)
        day += timedelta(days=rng.randint(1, 3))
    text = "".join(parts)
    located = tuple(Fact(f.sentence, f.keyword, text.find(f.sentence)) for f in facts)
    return Document(text=text, facts=located, tokens=count_text(text))
