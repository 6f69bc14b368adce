"""The fidelity benchmark's generated conversation holds the properties its scores rely on."""

from __future__ import annotations

import re

import pytest
from recursa.agent.interchange.documents import ConversationDocument

from benchmarks.fidelity.data import (
    KINDS,
    Dialogue,
    content_words,
    filler_sentences,
    generate,
    shared_content_words,
)
from benchmarks.fidelity.vocabulary import RELATIONS


@pytest.fixture(scope="module")
def dialogue() -> Dialogue:
    return generate(7)


def test_same_seed_same_conversation_other_seed_another() -> None:
    """Generation is seeded: the same seed repeats exactly, another seed differs."""
    assert generate(7) == generate(7)
    assert generate(8).messages != generate(7).messages


def test_long_multi_session_conversation(dialogue: Dialogue) -> None:
    """Several hundred messages, alternating roles, over many days in time order."""
    messages = dialogue.messages
    assert len(messages) == 600
    assert [m.role for m in messages] == ["user", "assistant"] * 300
    times = [m.created_at for m in messages]
    assert times == sorted(times)
    days = {m.created_at.date() for m in messages}
    assert days == set(dialogue.days) and len(days) == 12


def test_every_kind_has_its_questions(dialogue: Dialogue) -> None:
    for kind in KINDS:
        assert sum(q.kind == kind for q in dialogue.questions) == 10
    assert [q.kind for q in dialogue.by_kind(2)] == [k for k in KINDS for _ in range(2)]


def test_evidence_is_a_user_message_holding_its_answer_word_and_no_other_does(
    dialogue: Dialogue,
) -> None:
    """An answer keyword shows its evidence: no other message or setup contains it."""
    setups = [m.content for q in dialogue.questions if q.setup for m in q.setup]
    for q in dialogue.questions:
        assert len(q.evidence) == len(q.keywords)
        for index, word in zip(q.evidence, q.keywords, strict=True):
            assert dialogue.messages[index].role == "user"
            pattern = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE)
            holders = [i for i, m in enumerate(dialogue.messages) if pattern.search(m.content)]
            assert holders == [index], (q.text, word)
            assert not any(pattern.search(s) for s in setups)


def test_paraphrase_questions_share_no_content_word_with_their_evidence(
    dialogue: Dialogue,
) -> None:
    for q in dialogue.questions:
        evidence = dialogue.messages[q.evidence[0]].content
        if q.kind == "paraphrase":
            assert content_words(q.text)
            assert shared_content_words(q.text, evidence) == [], q.text
        elif q.kind == "verbatim":
            # The check can tell: questions in the fact's own words do share words.
            assert shared_content_words(q.text, evidence), q.text


def test_shared_content_words_sees_inflections() -> None:
    assert shared_content_words("Where did she move to?", "My sister moved to Cork.")
    assert shared_content_words("What does he do for a living?", "He lives in Cork.")
    assert not shared_content_words("What does my sister do for a living?", "My sis is a chef.")


def test_time_questions_evidence_falls_on_the_named_day(dialogue: Dialogue) -> None:
    times = [q for q in dialogue.questions if q.kind == "time"]
    assert {"date", "event"} == {"date" if " on the day " not in q.text else "event" for q in times}
    for q in times:
        assert q.day is not None
        (index,) = q.evidence
        assert dialogue.messages[index].created_at.date() == q.day
        if " on the day " not in q.text:
            assert f"{q.day:%A} {q.day.day} {q.day:%B}" in q.text


def test_two_fact_questions_need_two_messages_from_different_turns(dialogue: Dialogue) -> None:
    for q in dialogue.questions:
        if q.kind == "two-fact":
            first, second = q.evidence
            assert first // 2 != second // 2


def test_pronoun_questions_follow_an_exchange_that_names_their_subject(
    dialogue: Dialogue,
) -> None:
    words = [r.word for r in RELATIONS]
    for q in dialogue.questions:
        if q.kind != "pronoun":
            assert q.setup is None
            continue
        assert q.setup is not None
        user, reply = q.setup
        (subject,) = [w for w in words if re.search(rf"\bmy {w}\b", user.content)]
        assert not any(w in q.text for w in words)
        assert re.search(r"\b(she|he|her|his)\b", q.text)
        assert re.search(r"\b(her|him)\b", reply.content)
        assert f"my {subject}" in dialogue.messages[q.evidence[0]].content.lower()
        assert user.created_at > dialogue.messages[-1].created_at


def test_filler_is_varied(dialogue: Dialogue) -> None:
    assert len(set(filler_sentences())) >= 300
    users = [m.content for m in dialogue.messages if m.role == "user"]
    assert len(set(users)) >= 250


def test_document_imports_as_is(dialogue: Dialogue) -> None:
    """The conversation document validates, with every message's time kept."""
    doc = ConversationDocument.parse(dialogue.document())
    assert [m.created_at for m in doc.messages] == [m.created_at for m in dialogue.messages]
