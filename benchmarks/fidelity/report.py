"""The fidelity tables: evidence recall, summary keyword rate, the goal and the timings."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from benchmarks.fidelity.data import KINDS
from benchmarks.fidelity.measure import MODES, Config, Run

SHORT = {"verbatim": "own", "paraphrase": "para", "pronoun": "pron", "time": "time",
         "two-fact": "two"}  # fmt: skip
LABEL = 26
CELL = 5
GOAL = 0.80
GOAL_BUDGET = 2048


def _rows(runs: Sequence[Run]) -> list[tuple[Config, str]]:
    seen: dict[tuple[str, str], tuple[Config, str]] = {}
    for r in runs:
        seen.setdefault((r.config.key, r.mode), (r.config, r.mode))
    order = {m: i for i, m in enumerate(MODES)}
    keys = list(dict.fromkeys(r.config.key for r in runs))
    return sorted(seen.values(), key=lambda cm: (keys.index(cm[0].key), order[cm[1]]))


def _find(runs: Sequence[Run], config: Config, mode: str, budget: int) -> Run | None:
    return next(
        (r for r in runs if r.config.key == config.key and r.mode == mode and r.budget == budget),
        None,
    )


def _cell(value: float | None) -> str:
    return f"{'-' if value is None else f'{value:.2f}':>{CELL}}"


def recall_table(runs: Sequence[Run], budgets: Sequence[int]) -> list[str]:
    """Rows config x mode; columns budget x question kind, and overall."""
    columns = [*KINDS, None]
    width = len(columns) * (CELL + 1) - 1
    head = " " * (LABEL + 10) + " | ".join(f"{f'{b:,} tokens':^{width}}" for b in budgets)
    kinds = " ".join(f"{SHORT[k] if k else 'all':>{CELL}}" for k in columns)
    sub = f"{'config':<{LABEL}}{'mode':<10}" + " | ".join(kinds for _ in budgets)
    lines = [head, sub, "-" * len(sub)]
    for config, mode in _rows(runs):
        cells = []
        for b in budgets:
            run = _find(runs, config, mode, b)
            if run is None:
                cells.append(" ".join(_cell(None) for _ in columns))
            elif run.unavailable:
                cells.append(f"{run.unavailable:<{width}}"[:width])
            else:
                cells.append(" ".join(_cell(run.rate(k)) for k in columns))
        lines.append(f"{config.label:<{LABEL}}{mode:<10}" + " | ".join(cells))
    return lines


def keyword_table(runs: Sequence[Run], budgets: Sequence[int]) -> list[str]:
    """The share of questions whose answer words all appear in the summary."""
    sub = f"{'config':<{LABEL}}{'mode':<10}" + " ".join(f"{b:>8,}" for b in budgets)
    lines = [sub, "-" * len(sub)]
    for config, mode in _rows(runs):
        if config.policy == "window":
            continue
        cells = []
        for b in budgets:
            run = _find(runs, config, mode, b)
            rate = None if run is None or run.unavailable else run.keyword_rate()
            cells.append(f"{'-' if rate is None else f'{rate:.2f}':>8}")
        lines.append(f"{config.label:<{LABEL}}{mode:<10}" + " ".join(cells))
    return lines


def goal_lines(runs: Sequence[Run]) -> list[str]:
    hybrid = [r for r in runs if r.config.key == "hybrid" and r.budget == GOAL_BUDGET]
    if not hybrid:
        return [f"Goal (hybrid summary+recall >= {GOAL:.2f} overall at {GOAL_BUDGET:,} tokens): "
                "not measured in this run."]  # fmt: skip
    lines = [f"Goal: hybrid summary+recall >= {GOAL:.2f} overall at {GOAL_BUDGET:,} tokens."]
    measured = [r for r in hybrid if not r.unavailable]
    for r in hybrid:
        lines.append(f"  {r.mode:<9} {r.unavailable or _verdict(r.rate())}")
    if len(measured) > 1:
        hits = [h for r in measured for h in r.recalled]
        lines.append(f"  {'together':<9} {_verdict(sum(hits) / len(hits))}")
    return lines


def _verdict(rate: float | None) -> str:
    met = rate is not None and rate >= GOAL
    return f"{_cell(rate).strip()} ({'met' if met else 'not met'})"


def timing_table(runs: Sequence[Run], budgets: Sequence[int]) -> list[str]:
    """Set-up time, preview_prompt time and recall block per question, summaries (live)."""
    sub = (
        f"{'config':<{LABEL}}{'mode':<10}{'setup s':>8}  {'preview ms min/median/max':>26}"
        f"  {'recall tok median/max':>21}  summaries at " + "/".join(f"{b:,}" for b in budgets)
    )
    lines = [sub, "-" * len(sub)]
    for config, mode in _rows(runs):
        own = [r for r in runs if r.config.key == config.key and r.mode == mode]
        if all(r.unavailable for r in own):
            lines.append(f"{config.label:<{LABEL}}{mode:<10}{'n/a':>8}")
            continue
        times = [t * 1000 for r in own for t in r.preview_s]
        setup = sum(r.setup_s for r in own)
        spread = (
            f"{min(times):.1f} / {statistics.median(times):.1f} / {max(times):.1f}"
            if times
            else "-"
        )
        summaries = "/".join(
            str(r.summaries) if mode == "live" and not r.unavailable else "-" for r in own
        )
        blocks = [t for r in own for t in r.recall_tokens]
        recall = f"{statistics.median(blocks):.0f} / {max(blocks)}" if any(blocks) else "-"
        lines.append(
            f"{config.label:<{LABEL}}{mode:<10}{setup:>8.1f}  {spread:>26}  {recall:>21}  "
            f"{summaries}"
        )
    return lines


def notes(runs: Sequence[Run]) -> list[str]:
    seen: dict[str, None] = {}
    for r in runs:
        if r.note:
            seen.setdefault(f"{r.config.label}, {r.mode}: {r.note}.", None)
    return list(seen)


def misses(runs: Sequence[Run]) -> list[str]:
    """The questions each recall configuration missed, per mode and budget."""
    lines = []
    for r in runs:
        if r.config.policy != "summary+recall" or r.unavailable:
            continue
        missed = r.missed()
        lines.append(f"{r.config.label}, {r.mode}, {r.budget:,}: {len(missed)} missed")
        lines.extend(f"    {text}" for text in missed)
    return lines
