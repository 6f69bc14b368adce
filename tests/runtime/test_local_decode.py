"""The local decode loop's helpers: stable incremental detokenizing and stop-string matching."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("torch")

from recursa.agent.runtime.local.decode import IncrementalDetokenizer, StopMatcher  # noqa: E402


def test_stop_matcher_holds_back_a_possible_stop_prefix() -> None:
    """Text that could begin a stop string is held until it is known not to be one."""
    matcher = StopMatcher(["END"])
    assert matcher.feed("Hello E") == ("Hello ", False)
    assert matcher.feed("N") == ("", False)
    assert matcher.feed("X") == ("ENX", False)
    assert matcher.feed(" and EN") == (" and ", False)
    assert matcher.feed("D more") == ("", True)


def test_stop_matcher_cuts_at_the_earliest_stop() -> None:
    """With several stop strings the reply ends before whichever comes first."""
    matcher = StopMatcher(["\n\n", "User:"])
    assert matcher.feed("a User: b\n\nc") == ("a ", True)
    assert StopMatcher([]).feed("anything") == ("anything", False)
    tail = StopMatcher(["xyz"])
    assert tail.feed("abx") == ("ab", False)
    assert tail.flush() == "x"


def test_incremental_detokenizer_never_emits_partial_characters(smollm: Any) -> None:
    """Multi-byte characters split across tokens come out whole, and the chunks add up."""
    tokenizer = smollm._tokenizer
    text = "Crème brûlée 🦊🐉 — naïve 東京 done."
    ids = tokenizer.encode(text, add_special_tokens=False)
    detok = IncrementalDetokenizer(
        lambda part: tokenizer.decode(part, clean_up_tokenization_spaces=False)
    )
    chunks = [detok.push(token) for token in ids]
    chunks.append(detok.flush())
    assert "".join(chunks) == text
    assert not any("\ufffd" in chunk for chunk in chunks)
    assert len([c for c in chunks if c]) > 5
