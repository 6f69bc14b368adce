"""The latency a person feels: time from send to first token, every turn of a long chat.

Run: python -m benchmarks.chat_latency [--turns 60] [--budget 2048] [--think 3]
                                       [--reply-tokens 48] [--threads T]
                                       [--open-tokens 2000] [--skip-chat] [--skip-open]

On the real SmolLM2-135M (its default precision, greedy) and the real recall, it
measures, in one run:

1. **A long chat typed as a person types**: `--turns` messages at a
   `--budget`-token prompt budget, each sent `--think` seconds after the previous
   reply ended (the person reads and types). Per turn: the time from `stream(...)`
   to its first token, how long the turn went on after its last token (a
   compaction it waited for), how many prompt tokens were prefilled, whether a
   compaction happened since the previous turn was planned, and what background
   work was still queued or running when it was sent. Twice (`--background`): with
   background work (the window folded after a reply while the person types, then
   the new prompt prefix prefilled) and without it (the turn folds the window
   itself, after its reply or before its prompt). Prints p50 / p95 / max and the
   turns that followed a compaction.
2. **The first turn after opening a long conversation**: a stored conversation
   of about `--open-tokens` prompt tokens is opened in a fresh agent and runtime
   (a cached model load, timed), and a question is sent at once; then the same
   with `Agent.warm(...)` called on opening and the question sent `--think`
   seconds later.

Figures vary with the machine's load: read the ratios and spreads of one run.
Not a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from recursa.agent import Agent

from benchmarks.recall_latency import FACTS, QUESTIONS
from benchmarks.runtime import TOPICS as RUNTIME_TOPICS

SYSTEM = "You are a friendly assistant. Be brief."
TOPICS = RUNTIME_TOPICS[1:9]  # eight everyday subjects to talk about between the facts


def chat_messages(turns: int) -> list[str]:
    """A chat that states facts, talks of other things, and asks about the facts later."""
    script: list[str] = []
    for i in range(turns):
        cycle = i % 24
        if cycle < 8:
            script.append(FACTS[cycle])
        elif cycle < 16:
            script.append(f"Tell me briefly about {TOPICS[cycle - 8]}.")
        else:
            script.append(QUESTIONS[cycle - 16])
    return script


@dataclass
class Turn:
    number: int
    ttft_s: float  # send to first token
    held_s: float  # last token to the end of the turn (a compaction the turn waited for)
    prefilled: int
    prompt: int
    after_compaction: bool = False
    busy: str = ""  # background work still queued or running when the message was sent


@dataclass
class Sent:
    """One turn as measured, and the compactions its trace shows (before / after its reply)."""

    turn: Turn
    folded_before: bool
    folded_after: bool


def send(agent: Agent, cid: int, number: int, text: str) -> Sent:
    """Runs one turn, timing its first token from the call to `stream(...)`."""
    started = time.perf_counter()
    stream = agent.stream(cid, text)
    first: float | None = None
    last = started
    for chunk in stream:
        if chunk.event == "text" and chunk.text:
            last = time.perf_counter()
            if first is None:
                first = last - started
    ended = time.perf_counter()
    reply = stream.reply
    assert reply is not None and reply.usage is not None and reply.trace is not None
    usage = reply.usage
    if first is None:  # an empty reply: its first token was its end
        first = usage.time_to_first_token_s or (ended - started)
    whens = {c.when for c in reply.trace.compactions if c.status == "compacted"}
    turn = Turn(number, first, ended - last, usage.prefill_tokens or 0, usage.prompt_tokens)
    return Sent(turn, "before_reply" in whens, "after_reply" in whens)


@contextmanager
def opened(
    db: Path, threads: int | None, budget: int, reply_tokens: int, background: bool
) -> Iterator[Agent]:
    """An agent on the default model, loaded lazily (`load_model()` loads it from the cache)."""
    with Agent.open(
        f"sqlite:///{db}",
        "smollm2-135m",
        max_prompt_tokens=budget,
        max_new_tokens=reply_tokens,
        runtime={"threads": threads},
        summarizer={"max_new_tokens": 96, "background": background},
    ) as agent:
        yield agent


def run_chat(args: argparse.Namespace, workdir: Path, background: bool) -> list[Turn]:
    """One chat of `args.turns` turns; background work on or off."""
    db = workdir / f"chat-{'bg' if background else 'fg'}.db"
    rows: list[Turn] = []
    with opened(db, args.threads, args.budget, args.reply_tokens, background) as agent:
        agent.load_model()
        cid = agent.create_conversation(system_prompt=SYSTEM)
        seen = 0  # summaries the previous turn could have planned against
        folded_after_previous = False
        for number, text in enumerate(chat_messages(args.turns), start=1):
            # A compaction since the previous turn was planned: in the background while the
            # person typed, at the end of the previous turn, or in this turn before its prompt.
            ready = len(agent.summaries(cid))
            busy = [k for k in ("compact", "warm") if agent.background_busy(cid, k)]
            sent = send(agent, cid, number, text)
            sent.turn.busy = "+".join(busy)
            sent.turn.after_compaction = ready > seen or folded_after_previous or sent.folded_before
            rows.append(sent.turn)
            seen, folded_after_previous = ready, sent.folded_after
            time.sleep(args.think)  # the person reads the reply and types the next message
        agent.wait_background(timeout=120)
    return rows


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):.2f} / {p95:.2f} / {ordered[-1]:.2f}"


def report_chat(label: str, rows: list[Turn]) -> None:
    print(
        f"\n{label}: turn  ttft_s  held_s  prefilled  prompt  after-compaction  background-at-send"
    )
    for r in rows:
        mark = "yes" if r.after_compaction else ""
        print(
            f"  {r.number:>4}  {r.ttft_s:6.2f}  {r.held_s:6.2f}  {r.prefilled:>9}  "
            f"{r.prompt:>6}  {mark:>16}  {r.busy}"
        )
    after = [r.ttft_s for r in rows if r.after_compaction]
    print(
        f"{label}: TTFT p50 / p95 / max {spread([r.ttft_s for r in rows])} s over {len(rows)} "
        f"turns; {len(after)} followed a compaction (their p50 / p95 / max {spread(after)} s); "
        f"held after the last token p50 / p95 / max {spread([r.held_s for r in rows])} s"
    )


def long_document(tokens: int, agent: Agent) -> dict[str, object]:
    """A stored conversation whose prompt is about `tokens` long (counted by the model)."""
    messages: list[dict[str, str]] = []
    i = 0
    while True:
        fact = FACTS[i % len(FACTS)]
        topic = TOPICS[i % len(TOPICS)]
        messages.append({"role": "user", "content": f"{fact} Also, tell me about {topic}."})
        messages.append(
            {
                "role": "assistant",
                "content": f"Noted: {fact.lower()} As for {topic}, it is a long story "
                "with many parts, and people have studied it for a long time. "
                "The short version is that small causes add up to large effects.",
            }
        )
        i += 1
        chat = [{"role": "system", "content": SYSTEM}, *messages]
        if agent.runtime.count_tokens(chat) >= tokens:  # type: ignore[arg-type]
            return {"title": "a long conversation", "system_prompt": SYSTEM, "messages": messages}


def run_open(args: argparse.Namespace, workdir: Path) -> None:
    """The first turn after opening a long conversation, with and without warm-up."""
    db = workdir / "open.db"
    budget = max(args.budget, args.open_tokens + 2 * args.reply_tokens + 256)
    question = "Which city did my brother move to?"
    with opened(db, args.threads, budget, args.reply_tokens, True) as agent:
        agent.load_model()
        document = long_document(args.open_tokens, agent)
        cold_id = agent.import_conversation(document)
        warm_id = agent.import_conversation(document)
    results: list[str] = []
    for label, cid, warm in (("without warm-up", cold_id, False), ("with warm-up", warm_id, True)):
        with opened(db, args.threads, budget, args.reply_tokens, True) as agent:
            started = time.perf_counter()
            agent.load_model()
            load_s = time.perf_counter() - started
            if warm:
                agent.warm(cid)
                time.sleep(args.think)  # the person types the question
            turn = send(agent, cid, 1, question).turn
            results.append(
                f"  {label:<16} load {load_s:5.2f} s  first token {turn.ttft_s:6.2f} s  "
                f"prefilled {turn.prefilled:>5} of {turn.prompt} prompt tokens"
            )
    print(f"\nFirst turn after opening a {args.open_tokens}-token conversation:")
    print("\n".join(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--budget", type=int, default=2048)
    parser.add_argument("--think", type=float, default=3.0, help="seconds between turns")
    parser.add_argument("--reply-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--open-tokens", type=int, default=2000)
    parser.add_argument(
        "--background", choices=("both", "on", "off"), default="both", help="which chats to run"
    )
    parser.add_argument("--skip-chat", action="store_true")
    parser.add_argument("--skip-open", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_chat:
            kept = {"both": (True, False), "on": (True,), "off": (False,)}[args.background]
            for background in kept:
                label = "background work on" if background else "background work off"
                report_chat(label, run_chat(args, workdir, background))
        if not args.skip_open:
            run_open(args, workdir)


if __name__ == "__main__":
    main()
