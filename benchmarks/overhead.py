"""Turn overhead: `preview_prompt` time at 1,000 vs 100,000 stored messages, SQLite and PostgreSQL.

    python -m benchmarks.overhead [--pg-url URL] [--sizes 1000,100000] [--repeats 40]

PostgreSQL is included when --pg-url or RECURSA_TEST_POSTGRES_URL is set; every
conversation gets its own scratch database (a temporary SQLite file, or a
database created on that server and dropped afterwards), so the small case
pays for a small full-text index and the comparison is like for like.
PostgreSQL gets VACUUM ANALYZE after the bulk load, as autovacuum gives it
shortly after an import (`--fresh` times it before that instead).

Each database holds one conversation of N messages (user lines made of filler
sentences, assistant acknowledgements, and a few planted facts) and a summary
covering all but the newest `WINDOW` messages. So, as with a verbatim window of
that size, recall searches everything before the last `WINDOW` messages:
99,950 candidates at 100,000. Both sizes hold more than a budget, so each
turn's prompt is full in both.

Two measures, each for questions with rare words (a planted fact's words) and
with common words (words of thousands of the filler lines, the worst case for
full-text ranking):
- `preview`: `Agent.preview_prompt` with the scripted model (its word tokenizer
  counts tokens, so the figures are the dialogue manager's and the database's
  own cost, no model's);
- `search`: the store-level recall search alone, as the planner calls it.

Samples are taken round-robin over the sizes, in a shuffled order, so a burst
of load from other processes hits every size alike. Goal: median at the largest
size / median at the smallest <= 1.5 for every row. A benchmark, not a test:
read the medians and the ratios, not single samples.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from recursa.agent import Agent
from recursa.agent.recall import recall_query
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.summarize import ExtractiveSummarizer
from recursa.memory import NewMessage
from recursa.memory.engine import make_engine
from sqlalchemy import text

from benchmarks.fidelity import FILLER, REPLIES
from benchmarks.store import scratch_database, timed_round_robin

SIZES = (1_000, 100_000)
# Newest messages outside the recall range (the verbatim window's size).
WINDOW = 50
BATCH = 5_000

# Facts planted a few times each, spread over the recall range: their words are rare.
RARE_FACTS = [
    "The code for my garage door is 4417.",
    "I keep my passport in the hallway closet.",
    "My dentist's name is Dr Okafor, in Baker Street.",
    "The plumber's phone number is 555 0192.",
]
RARE_QUESTIONS = [
    "What is the code for my garage door?",
    "Where do I keep my passport?",
    "What is my dentist's name?",
    "Remind me of the plumber's phone number.",
]
# Their content words occur in thousands of the filler lines.
COMMON_QUESTIONS = [
    "What did I say about the soup recipe with lentils?",
    "Remind me what happened with the train delay.",
    "Which film did we watch about sailors?",
    "How long did the team meeting run over?",
]
PLANTS_PER_FACT = 3


@dataclass
class Row:
    backend: str
    measure: str
    kind: str
    size: int
    samples: list[float]


def conversation(n: int, seed: int) -> list[NewMessage]:
    """n messages: filler exchanges, with each rare fact planted in the recall range."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        if i % 2 == 0:
            content = f"{rng.choice(FILLER)} {rng.choice(FILLER)} (note {i})"
            items.append(NewMessage("user", content))
        else:
            items.append(NewMessage("assistant", rng.choice(REPLIES)))
    user_slots = range(0, n - WINDOW, 2)
    for fact in RARE_FACTS:
        for slot in rng.sample(user_slots, PLANTS_PER_FACT):
            items[slot] = NewMessage("user", fact)
    return items


def build(agent: Agent, url: str, n: int, seed: int, settle: bool) -> int:
    """The conversation, bulk-appended, with a summary covering all but the newest WINDOW."""
    store = agent.store
    engine = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    postgresql = engine.dialect.name == "postgresql"
    if postgresql and not settle:  # keep autovacuum from settling it mid-run
        with engine.connect() as conn:
            conn.execute(text("ALTER TABLE messages SET (autovacuum_enabled = false)"))
    cid = store.create_conversation(title=f"{n:,} messages").id
    items = conversation(n, seed)
    for start in range(0, n, BATCH):
        store.append_messages(cid, items[start : start + BATCH])
    store.add_summary(
        cid,
        content="Summary: the user talked about their days, meals, films and errands.",
        covers_from_seq=1,
        covers_through_seq=n - WINDOW,
        parent_id=None,
        token_count=12,
        tokenizer_id=None,
        model="bench",
        prompt_version="bench",
    )
    if settle and postgresql:
        # What autovacuum does soon after a bulk insert: planner statistics, and the
        # GIN index's pending list merged into the index proper.
        with engine.connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return cid


def preview(agent: Agent, cid: int, questions: Sequence[str]) -> Callable[[], None]:
    turn = iter(range(10**9))

    def run() -> None:
        plan = agent.preview_prompt(cid, questions[next(turn) % len(questions)])
        assert plan.total_tokens <= plan.budget

    return run


def search(agent: Agent, cid: int, questions: Sequence[str], hits: int) -> Callable[[], None]:
    """The recall search the planner sends: content words, "any", range before the window."""
    through = agent.store.get_conversation(cid).last_seq - WINDOW
    queries = [recall_query(q) for q in questions]
    turn = iter(range(10**9))

    def run() -> None:
        agent.store.search(
            queries[next(turn) % len(queries)],
            conversation_id=cid,
            through_seq=through,
            limit=hits,
            include_summaries=False,
            match="any",
        )

    return run


def bench_backend(
    backend: str, pg_url: str | None, sizes: Sequence[int], args: argparse.Namespace
) -> list[Row]:
    runtime = ScriptedRuntime(context_window=args.budget + 512)
    kinds = {"rare": RARE_QUESTIONS, "common": COMMON_QUESTIONS}
    fns: dict[tuple[str, str, int], Callable[[], None]] = {}
    with ExitStack() as stack:
        for n in sizes:
            url = stack.enter_context(scratch_database(backend, pg_url))
            agent = stack.enter_context(
                Agent.open(
                    url,
                    runtime,
                    summarizer=ExtractiveSummarizer(runtime.count_text),
                    max_prompt_tokens=args.budget,
                    reply_reserve=256,
                    policy="summary+recall",
                )
            )
            print(f"[{backend}] building {n:,} messages ...", flush=True)
            cid = build(agent, url, n, args.seed, not args.fresh)
            hits = agent.settings.recall.max_hits * 3  # what recall asks the full-text search for
            for kind, questions in kinds.items():
                fns[("preview", kind, n)] = preview(agent, cid, questions)
                fns[("search", kind, n)] = search(agent, cid, questions, hits)
        print(f"[{backend}] timing ...", flush=True)
        named = {"|".join(map(str, key)): fn for key, fn in fns.items()}
        samples = timed_round_robin(named, args.repeats, random.Random(args.seed))
    rows = []
    for key in fns:
        measure, kind, n = key
        rows.append(Row(backend, measure, kind, n, samples["|".join(map(str, key))]))
    return rows


def render(rows: list[Row], sizes: Sequence[int]) -> str:
    header = (
        f"{'backend':<11} {'measure':<8} {'words':<7} {'messages':>9} "
        f"{'min ms':>8} {'median ms':>9} {'max ms':>8}"
    )
    lines = [header, "-" * len(header)]
    order = {"sqlite": 0, "postgresql": 1, "preview": 0, "search": 1, "rare": 0, "common": 1}

    def group(r: Row) -> tuple[int, int, int]:
        return order[r.backend], order[r.measure], order[r.kind]

    for r in sorted(rows, key=lambda r: (*group(r), r.size)):
        lines.append(
            f"{r.backend:<11} {r.measure:<8} {r.kind:<7} {r.size:>9,} {min(r.samples) * 1e3:>8.2f} "
            f"{statistics.median(r.samples) * 1e3:>9.2f} {max(r.samples) * 1e3:>8.2f}"
        )
    lines += ["", f"ratio median({sizes[-1]:,}) / median({sizes[0]:,}), goal <= 1.5:"]
    groups = dict.fromkeys((r.backend, r.measure, r.kind) for r in sorted(rows, key=group))
    for backend, measure, kind in groups:
        by_size = {
            r.size: statistics.median(r.samples)
            for r in rows
            if (r.backend, r.measure, r.kind) == (backend, measure, kind)
        }
        ratio = by_size[sizes[-1]] / by_size[sizes[0]]
        verdict = "ok" if ratio <= 1.5 else "ABOVE GOAL"
        lines.append(f"  {backend:<11} {measure:<8} {kind:<7} {ratio:>5.2f}  {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("RECURSA_TEST_POSTGRES_URL"),
        help="PostgreSQL server URL (default: RECURSA_TEST_POSTGRES_URL; unset: SQLite only)",
    )
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="comma-separated conversation sizes"
    )
    parser.add_argument("--repeats", type=int, default=40, help="timed rounds per measure")
    parser.add_argument("--budget", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="PostgreSQL: time right after the import, before VACUUM ANALYZE",
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if min(sizes) <= WINDOW:
        parser.error(f"every size must exceed the window ({WINDOW} messages)")
    backends = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    rows: list[Row] = []
    for backend in backends:
        rows += bench_backend(backend, args.pg_url, sizes, args)
    state = "right after import" if args.fresh else "after VACUUM ANALYZE"
    print(
        f"\npreview_prompt and recall search (budget {args.budget}, policy summary+recall, "
        f"recall range = all but the newest {WINDOW} messages; scripted model; "
        f"{args.repeats} rounds, sizes interleaved; PostgreSQL {state})\n"
    )
    print(render(rows, sizes))
    if not args.pg_url:
        print("\n(PostgreSQL skipped: pass --pg-url or set RECURSA_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
