"""Property tests of the pure planner and the compaction decision.

The token counter is the scripted model's word tokenizer: deterministic, with a
ChatML-like per-message overhead, so budgets behave like a real model's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recursa.agent.compaction.decide import (
    Marks,
    WindowItem,
    decide_compaction,
    exchanges,
    water_marks,
)
from recursa.agent.errors import BudgetError
from recursa.agent.planning.plan import NewText, build_plan, compute_budget, message_cost
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.settings import BudgetSettings, RecallSettings
from recursa.agent.templates import Templates
from recursa.memory.records import MessageRecord, SummaryRecord

COUNTER = ScriptedRuntime()
TEMPLATES = Templates.load("v1")
T0 = datetime(2025, 1, 1, tzinfo=UTC)
WORDS = ["alpha", "beta", "gamma", "delta", "fish", "cat", "Paris", "42", "blue", "tree"]

text_st = st.lists(st.sampled_from(WORDS), min_size=1, max_size=40).map(" ".join)


def record(i: int, role: str, content: str, *, pinned: bool = False) -> MessageRecord:
    return MessageRecord(
        id=1000 + i,
        conversation_id=1,
        seq=i,
        role=role,  # type: ignore[arg-type]
        content=content,
        status="complete",
        created_at=T0 + timedelta(minutes=i),
        metadata={"i": i},
        pinned=pinned,
    )


@st.composite
def histories(draw: st.DrawFn) -> dict:
    n = draw(st.integers(0, 40))
    texts = draw(st.lists(text_st, min_size=n, max_size=n))
    records = [record(i + 1, "user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]
    covered = draw(st.integers(0, n))
    pinned_seqs = draw(st.sets(st.integers(1, max(1, covered)), max_size=3)) if covered else set()
    records = [record(r.seq, r.role, r.content, pinned=r.seq in pinned_seqs) for r in records]
    summary = None
    if covered and draw(st.booleans()):
        summary = SummaryRecord(
            id=7,
            conversation_id=1,
            covers_from_seq=1,
            covers_through_seq=covered,
            parent_id=None,
            depth=1,
            content=draw(text_st),
            token_count=0,
            tokenizer_id=COUNTER.tokenizer_id,
            model="scripted",
            prompt_version="summarize/v1",
            created_at=T0,
        )
    else:
        covered = 0
    archived = records[:covered]
    recall = draw(st.permutations(archived)) if archived else []
    return {
        "window": records[covered:],
        "pinned": [r for r in archived if r.pinned],
        "recall": list(recall)[: draw(st.integers(0, 10))],
        "summary": summary,
        "new": draw(text_st),
        "budget": draw(st.integers(30, 600)),
        "shares": draw(st.tuples(st.floats(0, 0.35), st.floats(0, 0.3), st.floats(0.1, 0.35))),
        "policy": draw(st.sampled_from(["window", "summary", "summary+recall"])),
        "max_hits": draw(st.integers(0, 8)),
    }


def plan_for(h: dict):
    s, r, w = h["shares"]
    budget_settings = BudgetSettings(summary_share=s, recall_share=r, window_share=w)
    return build_plan(
        counter=COUNTER,
        templates=TEMPLATES,
        system_prompt="You are terse.",
        new=NewText(h["new"]),
        budget=h["budget"],
        budget_settings=budget_settings,
        policy=h["policy"],
        summary=h["summary"],
        window=h["window"],
        pinned=h["pinned"],
        recall=h["recall"],
        recall_settings=RecallSettings(max_hits=h["max_hits"], max_excerpt_tokens=12),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_plan_never_exceeds_budget_and_counts_are_exact(h: dict) -> None:
    """For any history and budget, the exact count of the rendered prompt is <= budget."""
    try:
        plan = plan_for(h)
    except BudgetError:
        system_only = COUNTER.count_tokens(
            [{"role": "system", "content": "You are terse."}, {"role": "user", "content": h["new"]}]
        )
        assert system_only > h["budget"]
        return
    assert COUNTER.count_tokens(plan.messages) == plan.total_tokens <= plan.budget
    assert sum(s.tokens for s in plan.sections) == plan.total_tokens
    assert all(s.tokens >= 0 for s in plan.sections)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_plan_keeps_system_and_new_never_duplicates_and_window_is_a_suffix(h: dict) -> None:
    """System prompt and new message always present; no message twice; window a suffix."""
    try:
        plan = plan_for(h)
    except BudgetError:
        return
    kinds = [s.kind for s in plan.sections]
    assert kinds[0] == "system" and kinds[-1] == "new"
    assert plan.messages[0]["role"] == "system"
    assert plan.messages[0]["content"].startswith("You are terse.")
    assert plan.messages[-1] == {"role": "user", "content": h["new"]}
    order = ["system", "summary", "window", "recall", "new"]
    assert kinds == sorted(kinds, key=order.index)
    ids = [i for s in plan.sections for i in s.message_ids]
    assert len(ids) == len(set(ids))
    window = plan.section("window")
    candidates = [r.id for r in h["window"]]
    in_candidates = set(candidates)
    unpinned = [m.id for m in window.messages if m.id in in_candidates] if window else []
    if unpinned:
        assert unpinned == candidates[len(candidates) - len(unpinned) :]
    # Everything left out of the window is reported as dropped (compaction due).
    assert sorted(set(candidates) - set(unpinned)) == plan.dropped_ids
    if plan.policy == "window":
        assert plan.section("summary") is None and plan.section("recall") is None
    if plan.policy != "summary+recall":
        assert plan.section("recall") is None
    recall = plan.section("recall")
    if recall:
        seqs = [m.seq for m in recall.messages]
        assert seqs == sorted(seqs)
        assert len(recall.message_ids) <= h["max_hits"]


def test_message_too_large_for_budget_is_rejected_with_sizes() -> None:
    """A new message that cannot fit even alone raises BudgetError naming its size and budget."""
    with pytest.raises(BudgetError, match=r"The message is \d+ tokens.*budget is 40 tokens"):
        build_plan(
            counter=COUNTER,
            templates=TEMPLATES,
            system_prompt="sys",
            new=NewText("word " * 50),
            budget=40,
            budget_settings=BudgetSettings(),
        )


def test_budget_is_window_minus_reserve_and_margin_capped() -> None:
    """budget = min(context_window - reply_reserve - safety_margin, max_prompt_tokens)."""
    s = BudgetSettings(reply_reserve=100, safety_margin=10)
    assert compute_budget(2048, s) == 1938
    assert compute_budget(2048, s.model_copy(update={"max_prompt_tokens": 512})) == 512
    assert compute_budget(300, s.model_copy(update={"max_prompt_tokens": 512})) == 190


def test_message_cost_is_what_a_message_adds_after_a_system_message() -> None:
    """The cached per-message cost is exactly additive for a ChatML-like template."""
    assert message_cost(COUNTER, "user", "a b c") == 4 + 5


# --- compaction --------------------------------------------------------------------------


@st.composite
def windows(draw: st.DrawFn) -> tuple[list[WindowItem], int, Marks, int]:
    covered = draw(st.integers(0, 50))
    n = draw(st.integers(0, 30))
    roles = draw(
        st.lists(
            st.sampled_from(["user", "assistant", "assistant", "system"]), min_size=n, max_size=n
        )
    )
    gaps = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    seq = covered
    items = []
    for i, (role, gap) in enumerate(zip(roles, gaps, strict=True)):
        seq += gap
        items.append(WindowItem(id=i + 1, seq=seq, role=role, tokens=draw(st.integers(1, 80))))
    high = draw(st.integers(0, 800))
    low = draw(st.integers(0, high))
    pending = draw(st.integers(0, 60))
    return items, covered, Marks(high=high, low=low), pending


@settings(max_examples=300, deadline=None)
@given(windows(), st.integers(0, 120))
def test_compaction_evicts_whole_oldest_exchanges_and_moves_coverage_forward(
    w: tuple[list[WindowItem], int, Marks, int], must: int
) -> None:
    """Eviction takes a prefix of whole exchanges, keeps the newest one, ends under low water."""
    items, covered, marks, pending = w
    d = decide_compaction(
        items,
        marks,
        covered_through_seq=covered,
        pending_tokens=pending,
        must_evict_through_seq=must,
    )
    total = sum(i.tokens for i in items) + pending
    assert d.window_tokens_before == total
    if not d.needed:
        assert d.covers_through_seq == covered
        groups = exchanges(items)
        assert len(groups) < 2 or (total <= marks.high and must <= covered)
        return
    assert d.covers_through_seq > covered  # coverage only moves forward
    assert d.covers_from_seq == covered + 1
    groups = exchanges(items)
    evicted = list(d.evict_ids)
    # A prefix of whole exchanges, never the newest one.
    k = 0
    taken: list[int] = []
    while len(taken) < len(evicted):
        taken.extend(i.id for i in groups[k])
        k += 1
    assert taken == evicted and k < len(groups)
    remaining = total - sum(i.tokens for i in items if i.id in set(evicted))
    assert d.window_tokens_after == remaining
    # Stopped as soon as the low-water mark (and the forced point) was reached.
    if k < len(groups) - 1:
        assert remaining <= marks.low and d.covers_through_seq >= must or k == len(groups) - 1
    before_last = total - sum(i.tokens for g in groups[: k - 1] for i in g)
    last_cover = groups[k - 2][-1].seq if k >= 2 else covered
    assert not (before_last <= marks.low and last_cover >= must)


def test_hysteresis_leaves_room_for_several_turns() -> None:
    """After compaction the window sits under the low-water mark, so the next turns append."""
    marks = water_marks(1000, BudgetSettings(window_share=0.5, low_water=0.5))
    assert marks == Marks(high=500, low=250)
    items = [WindowItem(i, i, "user" if i % 2 else "assistant", 60) for i in range(1, 11)]
    d = decide_compaction(items, marks)
    assert d.needed and d.window_tokens_after <= 250
    # Adding two more exchanges stays under the high-water mark: no compaction.
    rest = [i for i in items if i.id not in d.evict_ids]
    more = rest + [WindowItem(i, i, "user" if i % 2 else "assistant", 60) for i in range(11, 15)]
    assert not decide_compaction(more, marks, covered_through_seq=d.covers_through_seq).needed


def test_compaction_rejects_items_inside_coverage() -> None:
    """Window items at or before the covered seq are a caller bug: a precise ValueError."""
    with pytest.raises(ValueError, match="inside the summary's coverage"):
        decide_compaction([WindowItem(1, 3, "user", 5)], Marks(10, 5), covered_through_seq=3)
    with pytest.raises(ValueError, match="increasing seq"):
        decide_compaction([WindowItem(1, 5, "user", 5), WindowItem(2, 4, "user", 5)], Marks(10, 5))
