"""Helpers of the hostile suite: the real `recursa` entry point run in-process, and
database snapshots.

`run_main(argv, input=...)` calls `recursa.tui.cli.main` (the console script's
own function, with its last-resort error handling) inside click's stream
isolation, so hundreds of cases run in one process. `snapshot(url)` is every
table's row count and a hash of its rows: equal before and after means nothing
was written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from click.testing import CliRunner

ESC = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202e"  # clear screen, retitle, C1 CSI, bidi override


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def run_main(argv: list[str], input: str | bytes | None = None) -> Outcome:
    """`recursa ARGV` through the console script's `main`, streams captured."""
    from recursa.tui.cli import main

    runner = CliRunner()
    with runner.isolation(input=input) as (out, err, _):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        stdout = out.getvalue().decode("utf-8", "replace")
        stderr = err.getvalue().decode("utf-8", "replace")
    return Outcome(code, stdout, stderr)


def snapshot(url: str) -> dict[str, tuple[int, str]]:
    """table -> (row count, SHA-256 of its rows in primary-key order)."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            out = {}
            for table in sorted(inspect(conn).get_table_names()):
                if table.startswith(("messages_fts", "summaries_fts")):
                    continue  # FTS shadow tables follow `messages`
                rows = conn.execute(text(f'SELECT * FROM "{table}" ORDER BY 1')).all()
                digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
                out[table] = (len(rows), digest)
            return out
    finally:
        engine.dispose()
