"""Composition with the real SmolLM2 model: past the budget, killed, resumed, every prompt exact.

One composition of 4x a small prompt budget is started by `recursa write` in a
child process, killed with SIGKILL once it has compacted at least once, and
finished here with `resume_composition`. That checks, on the real model and
tokenizer: the budget holds for every step (recounted with the model's own chat
template), compaction happens, no step is lost or written twice across the
kill, and the stored steps concatenate exactly to the text that was emitted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from recursa.agent import Agent
from recursa.memory.store import Store

pytestmark = pytest.mark.model

SHARED_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "test-cache"

BUDGET = 192
TARGET = 4 * BUDGET
STEP = 32
# Settings shared by the child (as environment variables) and this process, which run the
# model one after the other, so each may use both cores. A small summarizer reply and a
# wide hysteresis keep the number of model calls (and the test's time) down.
SETTINGS: dict[str, Any] = {
    "max_prompt_tokens": BUDGET,
    "window_share": 0.6,
    "low_water": 0.4,
    "summary_share": 0.2,
    "threads": 2,
    "summarizer": {"max_new_tokens": 24},
}
ENV = {
    "RECURSA_BUDGET__MAX_PROMPT_TOKENS": str(BUDGET),
    "RECURSA_BUDGET__WINDOW_SHARE": "0.6",
    "RECURSA_BUDGET__LOW_WATER": "0.4",
    "RECURSA_BUDGET__SUMMARY_SHARE": "0.2",
    "RECURSA_RUNTIME__THREADS": "2",
    "RECURSA_SUMMARIZER__MAX_NEW_TOKENS": "24",
}


class _Reader(threading.Thread):
    """Collects a pipe's text as it arrives, so the child never blocks on a full pipe."""

    def __init__(self, pipe: Any) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.parts: list[str] = []

    def run(self) -> None:
        for chunk in iter(lambda: self.pipe.read1(4096), b""):
            self.parts.append(chunk.decode("utf-8", errors="replace"))

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _wait_for_compaction(db_url: str, child: subprocess.Popen[bytes], *, steps: int) -> int:
    """Poll the database until the child's composition has a summary and `steps` steps."""
    deadline = time.monotonic() + 900  # a hang guard only, far above the expected time
    store = Store.open(db_url)
    try:
        while time.monotonic() < deadline:
            assert child.poll() is None, "the composition ended before it could be killed"
            found = store.list_conversations(kind="composition")
            if found:
                cid = found[0].id
                stored = [m for m in store.messages(cid) if m.role == "assistant"]
                if store.latest_summary(cid) is not None and len(stored) >= steps:
                    return cid
            time.sleep(0.2)
    finally:
        store.close()
    raise AssertionError("the child never compacted")


def test_composition_past_the_budget_survives_sigkill_and_resumes(
    smollm: Any,
    shared_model: Any,
    make_agent: Callable[..., Agent],
    sqlite_url: str,
) -> None:
    """4x the budget: killed mid-composition, resumed from the last stored step, all exact."""
    env = {**os.environ, **ENV, "RECURSA_CACHE_DIR": str(SHARED_CACHE)}
    opening = "Today the weather"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from recursa.tui.cli import main; main()",
            "write",
            opening,
            "--tokens",
            str(TARGET),
            "--step",
            str(STEP),
            "--seed",
            "7",
            "--preset",
            "weather",
            "--db",
            sqlite_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, err = _Reader(child.stdout), _Reader(child.stderr)
    out.start()
    err.start()
    try:
        cid = _wait_for_compaction(sqlite_url, child, steps=4)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        out.join(timeout=10)
        err.join(timeout=10)
    assert child.returncode == -signal.SIGKILL, err.text

    agent = make_agent(shared_model, **SETTINGS)
    before = [m for m in agent.messages(cid) if m.role == "assistant"]
    stored_before = agent.composition_text(cid)
    # What the child printed before it died starts with everything it had stored (a step
    # it was still writing was printed but never stored: resume writes that step again).
    assert out.text.startswith(stored_before), (out.text, stored_before)
    assert stored_before.startswith(opening)

    stream = agent.resume_composition(cid)
    chunks = list(stream)
    result = stream.result
    assert result is not None
    emitted = "".join(c.text for c in chunks if c.event == "text")
    first_new = next(c.step for c in chunks if c.step is not None)
    assert first_new.index == len(before) + 1

    assert result.stop_reason == "target"
    assert result.tokens == TARGET
    steps = [m for m in agent.messages(cid) if m.role == "assistant"]
    assert [m.id for m in steps[: len(before)]] == [m.id for m in before]
    assert [m.metadata["composition_step"] for m in steps] == list(range(1, len(steps) + 1))
    assert sum(m.metadata["tokens"] for m in steps) == TARGET
    assert "".join(m.content for m in steps[len(before) :]) == emitted
    assert agent.composition_text(cid) == stored_before + emitted == result.document

    # Every step's prompt, recounted with the model's tokenizer and chat template.
    traces = agent.traces(cid)
    assert len(traces) == len(steps)
    for trace in traces:
        assert smollm.count_tokens(trace.messages) == trace.total_tokens <= BUDGET
    chain = agent.summaries(cid)
    assert len(chain) >= 2
    assert any(t.summary_id is not None for t in traces)
    # The first resumed step continued from the last stored one: it saw it verbatim,
    # or the summary it saw covers it.
    resumed = agent.trace(first_new.message_id)
    covered = next((s.covers_through_seq for s in chain if s.id == resumed.summary_id), 0)
    assert before[-1].id in resumed.window_ids or covered >= before[-1].seq
