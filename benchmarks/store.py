"""Store benchmark: append throughput, and whether a turn's memory read grows with history.

Run: python -m benchmarks.store [--pg-url URL] [--repeats N]
(PostgreSQL is included when --pg-url or RECURSA_TEST_POSTGRES_URL is set; a
scratch database is created on that server and dropped afterwards.)

For conversations of 100 to 100,000 messages, each with a summary covering all
but a recent window of the same size, it times what the dialogue manager reads
every turn: the latest summary, the verbatim window after it, and the window's
token total. The ratio time(100,000) / time(100) should stay <= 1.5: the cost of
a turn must not grow with the length of the history. Big conversations are
seeded with bulk inserts (fast); the timed reads go through the public Store API.
Not a timed test: figures vary with the machine, so read medians and ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from recursa.memory.engine import make_engine
from recursa.memory.models import Conversation, Message, MessageTokenCount
from recursa.memory.store import Store
from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

SIZES = (100, 1_000, 10_000, 100_000)
WINDOW = 40  # recent messages left verbatim after the summary
TOKENIZER = "bench:words"
BATCH = 5_000
VOCABULARY = (
    "memory summary window token budget prompt model reply turn context history recall "
    "search index store message conversation agent user assistant system recursive"
)
WORDS = tuple(VOCABULARY.split())


@dataclass
class Row:
    backend: str
    measure: str
    samples: list[float]

    def stats(self) -> tuple[float, float, float]:
        return min(self.samples), statistics.median(self.samples), max(self.samples)


@contextmanager
def scratch_database(kind: str, pg_url: str | None) -> Iterator[str]:
    """A URL of an empty database, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="recursa-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    assert pg_url is not None
    base = make_url(pg_url)
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    name = f"recursa_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(12, 40))) + "."


def seed(url: str, store: Store, size: int, rng: random.Random) -> int:
    """A conversation of `size` messages with token counts and a summary up to the window."""
    conv = store.create_conversation(title=f"bench {size}")
    engine = make_engine(url)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            for first in range(1, size + 1, BATCH):
                seqs = range(first, min(first + BATCH, size + 1))
                rows = [
                    {
                        "conversation_id": conv.id,
                        "seq": seq,
                        "role": "user" if seq % 2 else "assistant",
                        "content": sentence(rng),
                        "status": "complete",
                        "created_at": start + timedelta(seconds=seq),
                        "metadata": {},
                        "pinned": False,
                    }
                    for seq in seqs
                ]
                ids = conn.execute(
                    insert(Message.__table__).returning(
                        Message.__table__.c.id, sort_by_parameter_order=True
                    ),
                    rows,
                ).scalars()
                conn.execute(
                    insert(MessageTokenCount.__table__),
                    [
                        {
                            "message_id": mid,
                            "tokenizer_id": TOKENIZER,
                            "count": len(r["content"].split()),
                        }
                        for mid, r in zip(ids, rows, strict=True)
                    ],
                )
            conn.execute(
                update(Conversation.__table__)
                .where(Conversation.__table__.c.id == conv.id)
                .values(last_seq=size)
            )
            # Fresh planner statistics, as autovacuum / a long-lived database would have.
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()
    store.add_summary(
        conv.id,
        content="Summary: " + sentence(rng),
        covers_from_seq=1,
        covers_through_seq=size - WINDOW,
        parent_id=None,
        token_count=50,
        tokenizer_id=TOKENIZER,
        model="bench",
        prompt_version="bench",
    )
    return conv.id


def turn_read(store: Store, conversation_id: int) -> Callable[[], None]:
    """What the prompt builder reads each turn: summary, verbatim window, window token total."""

    def read() -> None:
        summary = store.latest_summary(conversation_id)
        after = summary.covers_through_seq if summary else 0
        window = store.messages(conversation_id, after_seq=after)
        total = store.window_token_total(conversation_id, after, TOKENIZER)
        assert len(window) == WINDOW and total > 0

    return read


def timed(fn: Callable[[], None], repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return samples


def timed_round_robin(
    fns: dict[str, Callable[[], None]], repeats: int, rng: random.Random, warmup: int = 3
) -> dict[str, list[float]]:
    """Time each function once per round, in a shuffled order, for `repeats` rounds.

    Interleaving means a burst of load from other processes hits every size
    alike, so the ratio between sizes stays meaningful on a shared machine.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            began = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - began)
    return samples


def bench_backend(
    kind: str, pg_url: str | None, sizes: tuple[int, ...], repeats: int, appends: int
) -> list[Row]:
    rng = random.Random(1)
    rows: list[Row] = []
    with scratch_database(kind, pg_url) as url, Store.open(url) as store:
        conv = store.create_conversation(title="appends")
        per_append = timed(
            lambda: store.append_message(conv.id, "user", sentence(rng)), appends, warmup=5
        )
        # One sample per append; reported as appends/s below.
        rows.append(Row(kind, "append", per_append))
        reads = {
            f"turn read @ {size:,}": turn_read(store, seed(url, store, size, rng)) for size in sizes
        }
        for name, samples in timed_round_robin(reads, repeats, rng).items():
            rows.append(Row(kind, name, samples))
    return rows


def render(rows: list[Row], sizes: tuple[int, ...]) -> str:
    lines = [
        f"{'backend':<11} {'measure':<20} {'min':>10} {'median':>10} {'max':>10}",
        "-" * 65,
    ]
    for row in rows:
        low, mid, high = row.stats()
        if row.measure == "append":
            lines.append(
                f"{row.backend:<11} {'appends/s':<20} "
                f"{1 / high:>10.0f} {1 / mid:>10.0f} {1 / low:>10.0f}"
            )
        else:
            lines.append(
                f"{row.backend:<11} {row.measure:<20} {low * 1e3:>8.2f}ms {mid * 1e3:>8.2f}ms "
                f"{high * 1e3:>8.2f}ms"
            )
    lines.append("")
    for backend in dict.fromkeys(row.backend for row in rows):
        reads = {r.measure: r for r in rows if r.backend == backend}
        small = reads.get(f"turn read @ {sizes[0]:,}")
        large = reads.get(f"turn read @ {sizes[-1]:,}")
        if small and large:
            ratio = statistics.median(large.samples) / statistics.median(small.samples)
            best = min(large.samples) / min(small.samples)
            verdict = "ok" if ratio <= 1.5 else "ABOVE TARGET"
            lines.append(
                f"{backend}: time({sizes[-1]:,}) / time({sizes[0]:,}) = {ratio:.2f} by median, "
                f"{best:.2f} by min (target <= 1.5: {verdict})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("RECURSA_TEST_POSTGRES_URL"),
        help="PostgreSQL server URL (default: RECURSA_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--repeats", type=int, default=50, help="timed rounds (one read per size each)"
    )
    parser.add_argument("--appends", type=int, default=300, help="timed single appends")
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="comma-separated conversation sizes"
    )
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    backends = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    rows: list[Row] = []
    for kind in backends:
        print(f"[{kind}] seeding and timing ...", flush=True)
        rows += bench_backend(kind, args.pg_url, sizes, args.repeats, args.appends)
    print(
        f"\nturn read = latest summary + verbatim window ({WINDOW} messages) + window token "
        f"total; {args.repeats} rounds after warm-up, sizes interleaved in random order\n"
    )
    print(render(rows, sizes))
    if not args.pg_url:
        print("\n(PostgreSQL skipped: pass --pg-url or set RECURSA_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
