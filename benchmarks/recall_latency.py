"""Recall and KV prefix reuse: does a turn after a compaction start as fast as one before it?

Run: python -m benchmarks.recall_latency [--turns 14] [--budget 2048] [--threads 1]
                                         [--embedder minilm|none] [--runs 1]

A chat on the real SmolLM2-135M (greedy, short replies) with the real recall:
its first part states facts, its later turns ask about them, so every turn after
the first compaction recalls excerpts of older turns. For each turn it records
the time to first token and how many prompt tokens were prefilled (the rest came
from the reused KV cache), and prints the median time to first token after the
first compaction divided by the median before it. Before recall kept its blocks
in place, every turn after a compaction re-encoded the whole recall block (about
490 tokens, 6.6 to 8.0 s on one thread); with them kept, a turn prefills its new
block, its message and the previous reply.

Figures vary with the machine's load: read the ratio of one run. Not a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from recursa.agent import Agent
from recursa.agent.runtime.options import RuntimeOptions
from recursa.agent.runtime.registry import open_runtime

FACTS = [
    "My sister Ada works as a marine biologist in Porto.",
    "The code for my locker at the gym is 4821.",
    "I keep my passport in the top drawer of the desk.",
    "My dentist is called Okonkwo and her office is on Elm Street.",
    "We adopted a grey cat named Pixel last spring.",
    "My brother Tomas moved to Tallinn for a job in robotics.",
    "I am allergic to peanuts and to penicillin.",
    "Our wedding anniversary is on the ninth of June.",
]
QUESTIONS = [
    "What does my sister do for a living?",
    "Which number opens my gym locker?",
    "Where did I put my passport?",
    "What is my dentist's name?",
    "What is the name of our cat?",
    "Which city did my brother move to?",
    "What am I allergic to?",
    "When is our anniversary?",
]


def run_chat(
    turns: int, budget: int, threads: int, embedder: str, workdir: Path
) -> list[dict[str, float | int | bool]]:
    """One chat; per turn: time to first token, prefilled and reused tokens, compacted before."""
    runtime = open_runtime("smollm2-135m", options=RuntimeOptions(threads=threads))
    rows: list[dict[str, float | int | bool]] = []
    with Agent.open(
        f"sqlite:///{workdir / 'latency.db'}",
        runtime,
        max_prompt_tokens=budget,
        max_new_tokens=48,
        summarizer={"max_new_tokens": 48},
        recall={"embedder": embedder},
    ) as agent:
        cid = agent.create_conversation(system_prompt="You are a friendly assistant. Be brief.")
        compacted = False
        messages = [*FACTS, *QUESTIONS]
        for i in range(turns):
            text = messages[i % len(messages)]
            if i >= len(messages):
                text = f"Once more: {text}"
            # Compaction may run in the background after a reply (summarizer.background):
            # a turn follows a compaction when a summary exists as it starts.
            folded = len(agent.summaries(cid))
            compacted = compacted or folded > 0
            started = time.perf_counter()
            reply = agent.send(cid, text)
            usage = reply.usage
            trace = reply.trace
            assert usage is not None and trace is not None
            rows.append(
                {
                    "turn": i + 1,
                    "after_compaction": compacted,
                    "ttft_s": usage.time_to_first_token_s or 0.0,
                    "prefill": usage.prefill_tokens or 0,
                    "reused": usage.reused_tokens or 0,
                    "prompt": usage.prompt_tokens,
                    "recalled": len(trace.plan.recalled_ids),
                    "kept_blocks": sum(
                        1 for s in trace.plan.recall_sections if s.before_message_id
                    ),
                    "compactions": sum(1 for c in trace.compactions if c.status == "compacted")
                    + (len(agent.summaries(cid)) - folded),
                    "turn_s": time.perf_counter() - started,
                }
            )
            # A compaction before this reply changes this prompt's prefix already.
            compacted = compacted or any(c.status == "compacted" for c in trace.compactions)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=14)
    parser.add_argument("--budget", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    before: list[float] = []
    after: list[float] = []
    prefill_before: list[int] = []
    prefill_after: list[int] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            rows = run_chat(args.turns, args.budget, args.threads, args.embedder, Path(tmp))
        print(
            f"run {run + 1}: turn  after-compaction  ttft_s  prefill  reused  prompt  "
            "recalled  kept-blocks  compactions  turn_s"
        )
        for r in rows:
            print(
                f"  {r['turn']:>10}  {str(r['after_compaction']):>16}  {r['ttft_s']:6.2f}  "
                f"{r['prefill']:>7}  {r['reused']:>6}  {r['prompt']:>6}  {r['recalled']:>8}  "
                f"{r['kept_blocks']:>11}  {r['compactions']:>11}  {r['turn_s']:6.2f}"
            )
        # The turn right after a compaction rebuilds its prefix once: it is reported
        # separately, and the ratio compares the turns that follow it with those before.
        first_after = next((r["turn"] for r in rows if r["after_compaction"]), None)
        for r in rows:
            if not r["after_compaction"]:
                before.append(float(r["ttft_s"]))
                prefill_before.append(int(r["prefill"]))
            elif r["turn"] != first_after:
                after.append(float(r["ttft_s"]))
                prefill_after.append(int(r["prefill"]))
    if before and after:

        def spread(values: list[float]) -> str:
            return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"

        print(
            f"TTFT before the first compaction (min/median/max): {spread(before)} s, "
            f"n={len(before)}; prefill median {statistics.median(prefill_before)} tokens"
        )
        print(
            f"TTFT after it, from its second turn on:           {spread(after)} s, "
            f"n={len(after)}; prefill median {statistics.median(prefill_after)} tokens"
        )
        ratio = statistics.median(after) / statistics.median(before)
        print(f"median TTFT after / before: {ratio:.2f}")
    else:
        print("No compaction happened in this chat: use more --turns or a smaller --budget.")


if __name__ == "__main__":
    main()
