"""A child process for the crash-safety and two-process tests (run as a script).

    python child_agent.py stream DB_URL CID        # stream a slow reply; print STREAMING
    python child_agent.py send DB_URL CID TEXT GO  # wait for the GO file, then send one turn

The model is the scripted one: these tests are about the database, not the text.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.summarize import ExtractiveSummarizer, SummaryResult, Turn


class SlowExtractive(ExtractiveSummarizer):
    """The extractive summarizer, slowed so two processes overlap while compacting."""

    def fold(
        self, previous: str | None, turns: Sequence[Turn], *, max_tokens: int
    ) -> SummaryResult:
        time.sleep(0.3)
        return super().fold(previous, turns, max_tokens=max_tokens)


def main(argv: list[str]) -> None:
    mode, url, cid = argv[0], argv[1], int(argv[2])
    if mode == "stream":
        runtime = ScriptedRuntime(replies=["word " * 2000], chunk_delay_s=0.01)
        with Agent.open(url, runtime) as agent:
            for chunk in agent.stream(cid, "tell me a long story"):
                if chunk.text:
                    print("STREAMING", flush=True)
        return
    text, go = argv[3], Path(argv[4])
    runtime = ScriptedRuntime(default="a short reply", chunk_delay_s=0.001)
    with Agent.open(
        url, runtime, summarizer=SlowExtractive(), max_prompt_tokens=300, reply_reserve=32
    ) as agent:
        agent.preview_prompt(cid, "warm up")  # open connections before the race
        while not go.exists():
            time.sleep(0.005)
        reply = agent.send(cid, text)
        statuses = [c.status for c in reply.trace.compactions] if reply.trace else []
        print("DONE", reply.message_id, ",".join(statuses), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
