"""The pure compaction decision: when to fold the window into the summary, and how much.

Hysteresis: compaction starts when the window outgrows its share of the budget
(the high-water mark) and then evicts the oldest *whole exchanges* until the
window is under the low-water mark. The prompt prefix then stays unchanged for
several turns, which is what lets a runtime reuse its KV cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recursa.agent.settings import BudgetSettings


@dataclass(frozen=True)
class WindowItem:
    """One window message as the decision sees it."""

    id: int
    seq: int
    role: str
    tokens: int


@dataclass(frozen=True)
class Marks:
    """The window's high- and low-water marks, in tokens."""

    high: int
    low: int


@dataclass(frozen=True)
class CompactionDecision:
    """Which messages to fold into the summary (none when `evict_ids` is empty)."""

    evict_ids: tuple[int, ...]
    covers_from_seq: int
    covers_through_seq: int
    window_tokens_before: int
    window_tokens_after: int
    marks: Marks

    @property
    def needed(self) -> bool:
        return bool(self.evict_ids)


def water_marks(flexible_budget: int, settings: BudgetSettings) -> Marks:
    """High = window_share of the flexible budget; low = low_water of high."""
    if flexible_budget < 0:
        raise ValueError(f"flexible_budget must be >= 0, got {flexible_budget}")
    high = int(settings.window_share * flexible_budget)
    return Marks(high=high, low=int(settings.low_water * high))


def exchanges(items: Sequence[WindowItem]) -> list[list[WindowItem]]:
    """Split messages into exchanges: each starts at a user message (or at the start)."""
    groups: list[list[WindowItem]] = []
    for item in items:
        if item.role == "user" or not groups:
            groups.append([item])
        else:
            groups[-1].append(item)
    return groups


def decide_compaction(
    window: Sequence[WindowItem],
    marks: Marks,
    *,
    covered_through_seq: int = 0,
    pending_tokens: int = 0,
    must_evict_through_seq: int = 0,
) -> CompactionDecision:
    """Decide the eviction for a window (oldest first, all with seq > covered_through_seq).

    `pending_tokens` counts what is not stored yet but will be in the next window
    (a reply being committed). Compaction is needed when the window's total is
    over the high-water mark, or when `must_evict_through_seq` says the planner
    could not fit messages up to that seq. It evicts whole exchanges from the
    oldest until the window is at most the low-water mark, and never evicts the
    newest exchange. Coverage only moves forward.
    """
    if marks.low > marks.high:
        raise ValueError(f"low-water mark {marks.low} is above high-water mark {marks.high}")
    seqs = [w.seq for w in window]
    if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
        raise ValueError("window items must be in strictly increasing seq order")
    if seqs and seqs[0] <= covered_through_seq:
        raise ValueError(
            f"window starts at seq {seqs[0]}, inside the summary's coverage "
            f"(through {covered_through_seq})"
        )
    total = sum(w.tokens for w in window) + pending_tokens
    groups = exchanges(window)
    nothing = CompactionDecision(
        (), covered_through_seq + 1, covered_through_seq, total, total, marks
    )
    forced = must_evict_through_seq > covered_through_seq
    if (total <= marks.high and not forced) or len(groups) < 2:
        return nothing
    evicted: list[WindowItem] = []
    remaining = total
    for group in groups[:-1]:
        reached = evicted[-1].seq if evicted else covered_through_seq
        if remaining <= marks.low and reached >= must_evict_through_seq:
            break
        evicted.extend(group)
        remaining -= sum(w.tokens for w in group)
    if not evicted:
        return nothing
    return CompactionDecision(
        evict_ids=tuple(w.id for w in evicted),
        covers_from_seq=covered_through_seq + 1,
        covers_through_seq=evicted[-1].seq,
        window_tokens_before=total,
        window_tokens_after=remaining,
        marks=marks,
    )
