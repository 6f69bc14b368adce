"""Turn overhead: `preview_prompt` time with 100 vs 100,000 stored messages.

    python -m benchmarks.overhead [--large 100000] [--repeats 30]

Each conversation is imported, then compacted until its summary is up to date
(as it is in normal use, where compaction follows the replies). What remains
per turn is the planner's work: latest summary, the verbatim window after it,
pinned messages, full-text recall over the archived messages, exact counting.
The goal is that none of it grows with the history: median time at 100,000
messages over median time at 100 must be <= 1.5.

The model is the scripted one (its word tokenizer counts tokens), so the
figures are the dialogue manager's and the database's own cost; summaries come
from the deterministic ExtractiveSummarizer.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.summarize import ExtractiveSummarizer

from benchmarks.fidelity import FILLER, REPLIES

# Questions whose content words are rare in the history (names, objects): the usual
# case for recall. And questions whose words occur in thousands of the generated
# messages (the filler repeats 15 sentences): the worst case for full-text ranking.
RARE_QUESTIONS = [
    "What is the code for my garage door?",
    "Where do I keep my passport?",
    "What is my dentist's name?",
    "Remind me of the plumber's phone number.",
]
COMMON_QUESTIONS = [
    "What did I say about the soup recipe with lentils?",
    "Remind me what happened with the train delay.",
    "Which film did we watch about sailors?",
    "How long did the team meeting run over?",
]


def build(agent: Agent, n: int, seed: int) -> int:
    rng = random.Random(seed)
    messages = []
    for i in range(n):
        if i % 2 == 0:
            content = f"{rng.choice(FILLER)} {rng.choice(FILLER)} (note {i})"
            messages.append({"role": "user", "content": content})
        else:
            messages.append({"role": "assistant", "content": rng.choice(REPLIES)})
    cid = agent.import_conversation({"title": f"{n} messages", "messages": messages})
    # Bring the summary up to date, as the turns after each reply would have.
    report = agent.compact(cid, force=True)
    if report.status != "compacted":
        raise SystemExit(f"setup failed: compaction {report.status} {report.error}")
    return cid


def measure(
    agent: Agent, cid: int, questions: Sequence[str], repeats: int
) -> tuple[tuple[float, float, float], int]:
    """(min, median, max) seconds of preview_prompt, and the last plan's token total."""
    for q in questions:  # warm caches and connections
        agent.preview_prompt(cid, q)
    times = []
    tokens = 0
    for r in range(repeats):
        q = questions[r % len(questions)]
        start = time.perf_counter()
        plan = agent.preview_prompt(cid, q)
        times.append(time.perf_counter() - start)
        tokens = plan.total_tokens
    return (min(times), statistics.median(times), max(times)), tokens


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--budget", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--db-url", default=None, help="database URL (default: a temp SQLite)")
    args = parser.parse_args(argv)
    runtime = ScriptedRuntime(context_window=args.budget + 512)
    kinds = {"rare words": RARE_QUESTIONS, "common words": COMMON_QUESTIONS}
    rows: list[tuple[int, str, tuple[float, float, float], int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db_url or f"sqlite:///{Path(tmp) / 'overhead.db'}"
        with Agent.open(
            url,
            runtime,
            summarizer=ExtractiveSummarizer(runtime.count_text),
            max_prompt_tokens=args.budget,
            reply_reserve=256,
        ) as agent:
            for n in (args.small, args.large):
                t0 = time.perf_counter()
                cid = build(agent, n, args.seed)
                setup = time.perf_counter() - t0
                for kind, questions in kinds.items():
                    spread, tokens = measure(agent, cid, questions, args.repeats)
                    rows.append((n, kind, spread, tokens, setup))
    print(
        f"preview_prompt overhead (budget {args.budget}, policy summary+recall, "
        f"{args.repeats} runs each; {url.split(':')[0]}; scripted model, "
        "extractive summaries)"
    )
    header = (
        f"{'stored messages':>15}  {'question':<12}  {'min ms':>7}  {'median ms':>9}"
        f"  {'max ms':>7}  {'prompt tokens':>13}  {'setup s':>7}"
    )
    print(header)
    print("-" * len(header))
    for n, kind, (low, median, high), tokens, setup in rows:
        print(
            f"{n:>15,}  {kind:<12}  {low * 1000:>7.1f}  {median * 1000:>9.1f}"
            f"  {high * 1000:>7.1f}  {tokens:>13}  {setup:>7.1f}"
        )
    for kind in kinds:
        small, large = [r for r in rows if r[1] == kind]
        ratio = large[2][1] / small[2][1]
        print(
            f"ratio {large[0]:,} / {small[0]:,} ({kind}), by median: {ratio:.2f} (goal <= 1.5)"
        )


if __name__ == "__main__":
    main()
