"""The fidelity data set: a seeded multi-session conversation with planted facts and questions.

`generate(seed)` writes a conversation of several hundred messages over several
sessions, each on its own day. Most of it is chit-chat built from templates;
planted in it are facts about the user's relations and belongings, and one
headline event per day. Questions about the facts are asked five ways (`KINDS`):

* ``verbatim``: with the fact's own words ("What is the name of my dentist?"
  against "By the way, my dentist's name is Okonkwo.");
* ``paraphrase``: with other words; the question shares no content word with
  its evidence ("What does my sister do for a living?" against "My sis has a
  job as a marine biologist."), which the generator checks;
* ``pronoun``: right after an exchange that names the subject ("Let's talk about
  my sister again." / "Sure, what about her?"), with a pronoun ("Where did she
  move to?");
* ``time``: about what was said on a day, named by its date ("What did I tell
  you on Tuesday 12 March?") or by its event ("What did I say on the day I
  moved?"); the evidence is that day's headline;
* ``two-fact``: about two facts stated in different turns ("Which cities did my
  sister and my uncle move to?").

Each question knows its evidence (indexes into `Dialogue.messages`) and its
answer keywords, one per evidence message. Nothing is downloaded: the same seed
always gives the same conversation.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from benchmarks.fidelity import vocabulary as v

KINDS = ("verbatim", "paraphrase", "pronoun", "time", "two-fact")
ATTRIBUTES = ("name", "job", "city", "hobby")
FIRST_DAY = date(2024, 3, 4)

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    created_at: datetime


@dataclass(frozen=True)
class Question:
    """One question, the messages that answer it and the words that show the answer."""

    kind: str
    text: str
    evidence: tuple[int, ...]  # indexes into Dialogue.messages
    keywords: tuple[str, ...]  # one answer word per evidence message
    # pronoun kind: the exchange (user, assistant) said right before the question
    setup: tuple[Message, Message] | None = None
    day: date | None = None  # time kind: the day the evidence was said


@dataclass(frozen=True)
class Dialogue:
    """The generated conversation and its questions."""

    seed: int
    messages: tuple[Message, ...]
    questions: tuple[Question, ...]
    days: tuple[date, ...]  # one per session, in order

    def exchanges(self) -> Iterator[tuple[Message, Message]]:
        """(user, assistant) pairs in order."""
        for i in range(0, len(self.messages), 2):
            yield self.messages[i], self.messages[i + 1]

    def document(self, extra: Sequence[Message] = ()) -> dict[str, Any]:
        """The conversation (plus `extra` messages at its end) as an import document."""
        return {
            "title": f"Fidelity benchmark, seed {self.seed}",
            "messages": [
                {
                    "role": m.role,
                    "content": m.content,
                    "created_at": m.created_at.isoformat().replace("+00:00", "Z"),
                }
                for m in (*self.messages, *extra)
            ],
        }

    def by_kind(self, per_kind: int | None = None) -> list[Question]:
        """The questions grouped by kind (in `KINDS` order), at most `per_kind` of each."""
        out: list[Question] = []
        for kind in KINDS:
            of_kind = [q for q in self.questions if q.kind == kind]
            out.extend(of_kind if per_kind is None else of_kind[:per_kind])
        return out


# content words -------------------------------------------------------------------------------

# Function words only: a smaller list than recall's stop words, so the paraphrase check
# is stricter than what any full-text query would drop.
FUNCTION_WORDS = frozenset(
    (  # noqa: SIM905
        "a an the i me my mine myself you your yours he him his she her hers it its we us "
        "our they them their is am are was were be been being do does did doing have has "
        "had having what which who whom whose where when why how to of in on at for from by "
        "with about as and or but if so not no this that these those there here again can "
        "could would should will shall may might must up out"
    ).split()
)
_WORD = re.compile(r"[a-z0-9]+")
_SUFFIXES = ("ing", "ed", "es", "er", "ly", "s", "e", "y")


def content_words(text: str) -> list[str]:
    """The words of `text` that carry meaning, lower-cased, in order."""
    words = _WORD.findall(text.lower())
    return [w for w in words if len(w) > 1 and w not in FUNCTION_WORDS]


def _root(word: str) -> str:
    # A crude stemmer that conflates at least what a Porter stemmer does for these words.
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _related(a: str, b: str) -> bool:
    ra, rb = _root(a), _root(b)
    if ra == rb:
        return True
    common = 0
    for x, y in zip(ra, rb, strict=False):
        if x != y:
            break
        common += 1
    return common >= 5


def shared_content_words(a: str, b: str) -> list[tuple[str, str]]:
    """Pairs of content words of `a` and `b` that share a root (empty: no word in common)."""
    return [(x, y) for x in content_words(a) for y in content_words(b) if _related(x, y)]


# the generator ------------------------------------------------------------------------------


@dataclass
class _Statement:
    text: str
    keyword: str
    slot: int = -1  # exchange index, once placed
    headline: bool = False


@dataclass
class _Plan:
    """Statements to place and questions that refer to them by statement number."""

    statements: list[_Statement] = field(default_factory=list)
    questions: list[tuple[str, str, list[int], str | None, date | None]] = field(
        default_factory=list
    )  # (kind, text, statement numbers, pronoun setup relation word, day)

    def state(self, text: str, keyword: str, slot: int = -1, headline: bool = False) -> int:
        self.statements.append(_Statement(text, keyword, slot, headline))
        return len(self.statements) - 1


def generate(
    seed: int = 7, *, exchanges: int = 300, sessions: int = 12, per_kind: int = 10
) -> Dialogue:
    """A conversation of `exchanges` user/assistant pairs over `sessions` days.

    Raises ValueError when the sizes cannot hold the questions asked for.
    """
    if sessions < 2 or sessions > len(v.EVENTS):
        raise ValueError(f"sessions must be between 2 and {len(v.EVENTS)}")
    if per_kind > sessions - 1:
        raise ValueError("time questions need per_kind <= sessions - 1 (one day each)")
    rng = random.Random(seed)
    starts = _session_starts(rng, exchanges, sessions)
    days = _session_days(rng, sessions)
    plan = _Plan()
    pools = _Pools(rng)

    # One headline per day, in the first few exchanges of its session.
    events = rng.sample(range(len(v.EVENTS)), sessions)
    headlines: list[int] = []
    for s, start in enumerate(starts):
        end = starts[s + 1] if s + 1 < sessions else exchanges
        _, headline, keyword = v.EVENTS[events[s]]
        text = f"{rng.choice(v.GREETINGS)} {headline}"
        slot = rng.randrange(start, min(start + 3, end))
        headlines.append(plan.state(text, keyword, slot, headline=True))

    slots = pools.relation_slots()
    for i in range(per_kind):
        _plan_verbatim(plan, pools, slots, i)
        _plan_paraphrase(plan, pools, slots, i)
        _plan_pronoun(plan, pools, slots)
        _plan_two_fact(plan, pools, slots)
    for i, s in enumerate(rng.sample(range(sessions - 1), per_kind)):
        event, _, _ = v.EVENTS[events[s]]
        said = days[s]
        if i % 2 == 0:
            text = f"What did I tell you on {said:%A} {said.day} {said:%B}?"
        else:
            text = f"What did I say on the day I {event}?"
        plan.questions.append(("time", text, [headlines[s]], None, said))

    # Place the facts anywhere but the very end (which every budget keeps verbatim).
    taken = {st.slot for st in plan.statements if st.slot >= 0}
    free = [x for x in range(int(exchanges * 0.92)) if x not in taken]
    unplaced = [st for st in plan.statements if st.slot < 0]
    if len(unplaced) > len(free):
        raise ValueError(f"{exchanges} exchanges cannot hold {len(unplaced)} facts")
    for st, slot in zip(unplaced, rng.sample(free, len(unplaced)), strict=True):
        st.slot = slot

    by_slot = {st.slot: st for st in plan.statements}
    messages: list[Message] = []
    clock = _Clock(rng, starts, days)
    for x in range(exchanges):
        if x in by_slot:
            st = by_slot[x]
            if st.headline:
                user, reply = st.text, rng.choice(v.HEADLINE_REPLIES)
            else:
                user, reply = _lead(rng, st.text), rng.choice(v.FACT_ACKS)
        else:
            user, reply = _filler(rng)
        messages.append(Message("user", user, clock.next(x)))
        messages.append(Message("assistant", reply, clock.next(x)))

    asked_at = datetime.combine(days[-1] + timedelta(days=2), time(10, 0), tzinfo=UTC)
    questions: list[Question] = []
    for kind, text, numbers, setup_rel, day in plan.questions:
        evidence = tuple(2 * plan.statements[n].slot for n in numbers)
        keywords = tuple(plan.statements[n].keyword for n in numbers)
        setup = None
        if setup_rel is not None:
            rel = next(r for r in v.RELATIONS if r.word == setup_rel)
            user = rng.choice(v.PRONOUN_SETUPS).format(rel=rel.word)
            reply = rng.choice(v.PRONOUN_SETUP_REPLIES).format(obj=rel.object)
            asked_at += timedelta(minutes=3)
            setup = (
                Message("user", user, asked_at),
                Message("assistant", reply, asked_at + timedelta(seconds=20)),
            )
        if kind == "paraphrase":
            shared = shared_content_words(text, messages[evidence[0]].content)
            if shared:
                raise ValueError(f"paraphrase {text!r} shares words with its evidence: {shared}")
        questions.append(Question(kind, text, evidence, keywords, setup, day))
    return Dialogue(seed, tuple(messages), tuple(questions), tuple(days))


def _lead(rng: random.Random, text: str) -> str:
    """The statement, sometimes after a few words that lead into it."""
    if text.startswith(("By the way", "For the record", "Note this")):
        return text
    lead = rng.choice(v.FACT_LEADS)
    if lead.endswith(": ") and not text.startswith("I "):
        text = text[0].lower() + text[1:]
    return lead + text


class _Pools:
    """Attribute values drawn without replacement, so every answer word is unique."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.values: dict[str, list[Any]] = {
            "name": rng.sample(v.NAMES, len(v.NAMES)),
            "city": rng.sample(v.CITIES, len(v.CITIES)),
            "job": rng.sample(v.JOBS, len(v.JOBS)),
            "hobby": rng.sample(v.HOBBIES, len(v.HOBBIES)),
        }
        self.things = rng.sample(v.THINGS, len(v.THINGS))
        self.items = rng.sample(v.ITEMS, len(v.ITEMS))
        self.places = rng.sample(v.PLACES, len(v.PLACES))
        self.selves = rng.sample(v.SELF_PARAPHRASES, len(v.SELF_PARAPHRASES))
        self.codes = rng.sample(range(1000, 10000), len(v.THINGS))

    def relation_slots(self) -> list[tuple[v.Relation, str]]:
        slots = [
            (rel, attr)
            for rel in v.RELATIONS
            for attr in ATTRIBUTES
            if not (rel.professional and attr == "job")
        ]
        return self.rng.sample(slots, len(slots))

    def value(self, attr: str, paraphrased: bool) -> tuple[str, str]:
        """(keyword, text) of a fresh value for the attribute."""
        raw = self.values[attr].pop()
        if attr in ("name", "city"):
            return raw, raw
        if attr == "job":
            return raw[0], raw[1]
        return raw[0], raw[2] if paraphrased else raw[1]


def _relation_fact(
    plan: _Plan, pools: _Pools, rel: v.Relation, attr: str, *, paraphrased: bool
) -> int:
    keyword, value = pools.value(attr, paraphrased)
    if paraphrased:
        phrase = rel.phrase
        text = v.PARAPHRASED_STATEMENTS[attr].format(
            Phrase=phrase[0].upper() + phrase[1:], value=value
        )
    else:
        month = pools.rng.choice(v.MONTHS)
        text = v.PLAIN_STATEMENTS[attr].format(rel=rel.word, value=value, month=month)
    return plan.state(text, keyword)


def _plan_verbatim(plan: _Plan, pools: _Pools, slots: list[tuple[v.Relation, str]], i: int) -> None:
    if i % 3 == 1 and pools.things:
        thing, code = pools.things.pop(), str(pools.codes.pop())
        n = plan.state(v.CODE_STATEMENT.format(thing=thing, code=code), code)
        plan.questions.append(("verbatim", v.CODE_QUESTION.format(thing=thing), [n], None, None))
    elif i % 3 == 2 and pools.items:
        item, (keyword, place) = pools.items.pop(), pools.places.pop()
        n = plan.state(v.ITEM_STATEMENT.format(item=item, place=place), keyword)
        plan.questions.append(("verbatim", v.ITEM_QUESTION.format(item=item), [n], None, None))
    else:
        rel, attr = slots.pop()
        n = _relation_fact(plan, pools, rel, attr, paraphrased=False)
        text = v.PLAIN_QUESTIONS[attr].format(rel=rel.word)
        plan.questions.append(("verbatim", text, [n], None, None))


def _plan_paraphrase(
    plan: _Plan, pools: _Pools, slots: list[tuple[v.Relation, str]], i: int
) -> None:
    if i % 3 == 2 and pools.selves:
        statement, question, values = pools.selves.pop()
        value = pools.rng.choice(values)
        n = plan.state(statement.format(value=value), value)
        plan.questions.append(("paraphrase", question, [n], None, None))
    else:
        rel, attr = slots.pop()
        n = _relation_fact(plan, pools, rel, attr, paraphrased=True)
        text = v.PARAPHRASED_QUESTIONS[attr].format(rel=rel.word)
        plan.questions.append(("paraphrase", text, [n], None, None))


def _plan_pronoun(plan: _Plan, pools: _Pools, slots: list[tuple[v.Relation, str]]) -> None:
    rel, attr = slots.pop()
    n = _relation_fact(plan, pools, rel, attr, paraphrased=False)
    text = v.PRONOUN_QUESTIONS[attr].format(subj=rel.subject, pos=rel.possessive)
    plan.questions.append(("pronoun", text, [n], rel.word, None))


def _plan_two_fact(plan: _Plan, pools: _Pools, slots: list[tuple[v.Relation, str]]) -> None:
    rel, attr = slots.pop()
    same = [k for k, (other, a) in enumerate(slots) if a == attr and other != rel]
    if not same:
        raise ValueError("too few relations left for a two-fact question")
    rel2, _ = slots.pop(same[-1])
    first = _relation_fact(plan, pools, rel, attr, paraphrased=False)
    second = _relation_fact(plan, pools, rel2, attr, paraphrased=False)
    text = v.TWO_FACT_QUESTIONS[attr].format(rel=rel.word, rel2=rel2.word)
    plan.questions.append(("two-fact", text, [first, second], None, None))


def _session_starts(rng: random.Random, exchanges: int, sessions: int) -> list[int]:
    weights = [rng.uniform(0.7, 1.3) for _ in range(sessions)]
    total = sum(weights)
    starts, acc = [], 0.0
    for w in weights:
        starts.append(round(acc / total * exchanges))
        acc += w
    return starts


def _session_days(rng: random.Random, sessions: int) -> list[date]:
    days, day = [], FIRST_DAY
    for _ in range(sessions):
        days.append(day)
        day += timedelta(days=rng.randint(1, 6))
    return days


class _Clock:
    """Message times: sessions start between 8:00 and 19:59; messages 20 s to 2.5 min apart."""

    def __init__(self, rng: random.Random, starts: Sequence[int], days: Sequence[date]) -> None:
        self.rng = rng
        self.starts = list(starts)
        self.days = list(days)
        self.session = -1
        self.now = datetime.min.replace(tzinfo=UTC)

    def next(self, exchange: int) -> datetime:
        session = max(s for s, start in enumerate(self.starts) if start <= exchange)
        if session != self.session:
            self.session = session
            start = time(self.rng.randint(8, 19), self.rng.randint(0, 59))
            self.now = datetime.combine(self.days[session], start, tzinfo=UTC)
        else:
            self.now += timedelta(seconds=self.rng.randint(20, 150))
        return self.now


# filler ---------------------------------------------------------------------------------------


def filler_sentences() -> list[str]:
    """Every distinct chit-chat sentence the user's filler is made of."""
    out = [f"{t} {a}." for t in v.TIMES for a in v.ACTIVITIES]
    out += list(v.OBSERVATIONS)
    out += [f"My verdict on {topic}: {opinion}." for topic in v.TOPICS for opinion in v.OPINIONS]
    return out


def filler_replies() -> list[str]:
    """Every distinct reply of the assistant to chit-chat."""
    return [f"{a} {f}" for a in v.ACKS for f in v.FOLLOW_UPS]


_SENTENCES = filler_sentences()
_REPLIES = filler_replies()


def _filler(rng: random.Random) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.08:
        rel = rng.choice(v.RELATIONS)
        topic = rng.choice(v.SMALL_TALK)
        user = v.RELATION_CHAT.format(meal=rng.choice(v.MEALS), rel=rel.word, topic=topic)
    elif roll < 0.16:
        return rng.choice(v.ASKS), rng.choice(v.ADVICE)
    elif roll < 0.26:
        attr = rng.choice(ATTRIBUTES)
        user = v.PLAIN_STATEMENTS[attr].format(
            rel=rng.choice(v.OTHER_PEOPLE),
            value=rng.choice(v.OTHER_VALUES[attr]),
            month=rng.choice(v.MONTHS),
        )
    else:
        user = " ".join(rng.sample(_SENTENCES, rng.choice((1, 2, 2, 3))))
    shape = rng.random()
    if shape < 0.2:
        reply = rng.choice(v.ACKS)
    elif shape < 0.4:
        reply = rng.choice(v.FOLLOW_UPS)
    else:
        reply = rng.choice(_REPLIES)
    return user, reply
