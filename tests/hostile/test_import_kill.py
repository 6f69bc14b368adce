"""A kill -9 in the middle of a large import leaves no new conversation behind."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

RECURSA_MAIN = "from recursa.tui.cli import main; main()"


def _big_file(path: Path, conversations: int, messages: int) -> None:
    docs = [
        {
            "title": f"Conversation {c}",
            "messages": [
                {"role": "user" if m % 2 == 0 else "assistant", "content": f"message {m} " * 20}
                for m in range(messages)
            ],
        }
        for c in range(conversations)
    ]
    path.write_text(json.dumps(docs), encoding="utf-8")


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_kill_9_during_a_large_import_leaves_zero_new_conversations(tmp_path):
    """The import writes every conversation in one transaction: killed while writing (its
    writes already in SQLite's WAL), the database keeps none of them; the file then imports
    whole."""
    db = tmp_path / "kill.db"
    url = f"sqlite:///{db}"
    big = tmp_path / "big.json"
    _big_file(big, conversations=1500, messages=4)
    env = {**os.environ, "RECURSA_RECALL__EMBEDDER": "none"}
    subprocess.run(
        [sys.executable, "-c", RECURSA_MAIN, "--db", url, "db", "upgrade"],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    with sqlite3.connect(db) as conn:  # start from an empty WAL: what grows next is the import
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(f"{db}-wal")
    proc = subprocess.Popen(
        [sys.executable, "-c", RECURSA_MAIN, "--db", url, "conversations", "import", str(big)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if wal.exists() and wal.stat().st_size > 256 * 1024:  # mid-transaction
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the import ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert _count(db, "conversations") == 0
    assert _count(db, "messages") == 0
    assert _count(db, "conversation_imports") == 0
    # Nothing was recorded as imported, so the same file imports whole afterwards.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            RECURSA_MAIN,
            "--db",
            url,
            "conversations",
            "import",
            str(big),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["conversations"]) == 1500
    assert _count(db, "messages") == 1500 * 4
