"""The repetition measures and the loop guard: pure functions, no model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from recursa.agent.compose.repetition import (
    Level,
    RepetitionGuard,
    RepetitionSettings,
    distinct_n,
    longest_repeated_ngram,
    repeated_fraction,
    words,
)


def _brute_longest(tokens: list[str]) -> int:
    best = 0
    for length in range(1, len(tokens)):
        grams = [tuple(tokens[i : i + length]) for i in range(len(tokens) - length + 1)]
        if len(set(grams)) < len(grams):
            best = length
    return best


@given(st.lists(st.sampled_from("abc"), max_size=40))
def test_longest_repeated_ngram_matches_brute_force(tokens: list[str]) -> None:
    """The hashed binary search finds exactly the longest run that occurs twice."""
    assert longest_repeated_ngram(tokens) == _brute_longest(tokens)


def test_longest_repeated_ngram_counts_overlapping_runs() -> None:
    assert longest_repeated_ngram(list("aaaa")) == 3
    assert longest_repeated_ngram(list("abcd")) == 0
    assert longest_repeated_ngram([]) == 0


def test_distinct_n_is_one_for_fresh_text_and_low_for_a_loop() -> None:
    fresh = words("the quick brown fox jumps over the lazy dog")
    loop = words("it rains . " * 20)
    assert distinct_n(fresh, 2) == 1.0
    assert distinct_n(loop, 2) < 0.1
    assert distinct_n([], 2) == 0.0


def test_repeated_fraction_sees_context_and_the_step_itself() -> None:
    context = words("the rain falls on the old town and the river rises")
    assert repeated_fraction(words("the rain falls on the old town"), context, 4) == 1.0
    assert repeated_fraction(words("a bright new morning comes with birds"), context, 4) == 0.0
    # A loop inside one step counts too.
    assert repeated_fraction(words("one two three four " * 4), [], 4) > 0.6


def _guard(**kw: object) -> RepetitionGuard:
    return RepetitionGuard(RepetitionSettings(**kw))  # type: ignore[arg-type]


LOOP = "The sun is shining and the birds are singing in the trees. " * 2
FRESH = [
    "A cold wind came down from the hills before noon, carrying dust and dry leaves.",
    "By evening the market had emptied; only two boys stayed to count their coins.",
    "Later that night Mara wrote a letter to her brother about the flooded bridge.",
    "In the morning the baker opened early and sold warm bread to the fishermen.",
]


def test_guard_escalates_then_stops_when_the_loop_persists() -> None:
    """Each looping step raises the control level; looping at the last level stops."""
    guard = _guard()
    guard.remember(LOOP)
    first = guard.observe(LOOP)
    assert first.action == "escalate" and guard.controls() == Level(1.3, 4)
    second = guard.observe(LOOP)
    assert second.action == "escalate" and guard.controls() == Level(1.6, 3)
    third = guard.observe(LOOP)
    assert third.action == "stop"


def test_guard_calms_down_after_clean_steps() -> None:
    guard = _guard(cooldown=2)
    guard.remember(LOOP)
    guard.observe(LOOP)
    assert guard.level == 1
    assert guard.observe(FRESH[0]).action == "ok"
    assert guard.level == 1
    guard.observe(FRESH[1])
    assert guard.level == 0 and guard.controls() is None


def test_fresh_text_never_triggers_the_guard() -> None:
    guard = _guard()
    for text in FRESH:
        assert guard.observe(text).action == "ok"
    assert guard.level == 0


def test_disabled_guard_only_measures() -> None:
    guard = _guard(enabled=False)
    guard.remember(LOOP)
    verdict = guard.observe(LOOP)
    assert verdict.action == "ok" and verdict.repeated == 1.0 and guard.controls() is None


def test_short_steps_are_not_judged() -> None:
    guard = _guard()
    guard.remember("OK. OK. OK.")
    assert guard.observe("OK.").action == "ok"


def test_settings_round_trip_and_validation() -> None:
    s = RepetitionSettings(n=3, threshold=0.4, levels=(Level(1.2, 0), Level(2.0, 2)))
    assert RepetitionSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError):
        RepetitionSettings(threshold=0.0)
    with pytest.raises(ValueError):
        RepetitionSettings(levels=())
    with pytest.raises(ValueError):
        RepetitionSettings(levels=(Level(5.0, 3),))
