"""Memory fidelity: does the prompt still hold the evidence for facts stated long ago?

    python -m benchmarks.fidelity [--exchanges 240] [--seed 7] [--facts 24]

A seeded generator writes a long conversation: filler chit-chat with planted
facts early on ("my dentist's name is Okonkwo", "the code for my locker is
4821", "I keep my passport in the desk drawer") and, much later, questions
about them. Each question knows the message id that holds its answer. The
conversation is driven through the real turn path (`Agent.send`, with its
compaction after replies) for every budget and policy; at each question the
PromptPlan is built with `preview_prompt` and scored:

* evidence recall: the share of questions whose evidence message is in the
  plan, verbatim (window) or recalled;
* summary key-word rate: the share of questions whose answer word appears in
  the summary the plan carries.

The model is the scripted one (replies come from the generated script) and
token counts use its word tokenizer. Summaries come from the deterministic
`ExtractiveSummarizer` (no model) by default, so the numbers measure the memory
policy, not a small model's summarizing skill; `--summarizer model` uses
SmolLM2-135M instead (slow: one model call per compaction).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.settings import SummarizerSettings
from recursa.agent.summarize import ExtractiveSummarizer, ModelSummarizer, Summarizer

BUDGETS = (512, 1024, 2048)
POLICIES = ("window", "summary", "summary+recall")

RELATIONS = [
    "dentist",
    "landlord",
    "sister",
    "cousin",
    "piano teacher",
    "boss",
    "neighbour",
    "accountant",
    "barber",
    "godmother",
    "plumber",
    "mentor",
]
NAMES = [
    "Okonkwo",
    "Vasquez",
    "Lindqvist",
    "Haraldsen",
    "Ferreira",
    "Nakamura",
    "Abernathy",
    "Castellano",
    "Dubois",
    "Kowalczyk",
    "Oyelaran",
    "Petrakis",
    "Quintero",
    "Sorensen",
]
THINGS = [
    "locker",
    "garage door",
    "bike lock",
    "office safe",
    "storage unit",
    "alarm panel",
    "mailbox",
    "gym locker",
]
ITEMS = [
    "passport",
    "spare keys",
    "birth certificate",
    "old diaries",
    "camping stove",
    "wedding album",
    "tax papers",
    "violin",
]
PLACES = [
    "desk drawer",
    "attic trunk",
    "blue suitcase",
    "kitchen cupboard",
    "garden shed",
    "bedside table",
    "basement shelf",
    "hallway closet",
]
FILLER = [
    "The weather turned grey again this afternoon.",
    "I tried a new soup recipe with lentils and cumin.",
    "We watched an old film about sailors last night.",
    "Traffic on the ring road was slow this morning.",
    "I am thinking about repainting the living room.",
    "The cafe near the station changed its menu.",
    "My running route goes along the river now.",
    "There was a loud concert in the park yesterday.",
    "I finally finished that long novel about the war.",
    "The train was delayed by twenty minutes today.",
    "I bought fresh bread at the market on Saturday.",
    "Our team meeting ran over by half an hour.",
    "The cat knocked a plant off the windowsill.",
    "I spent the evening sorting old photographs.",
    "The heating makes a strange noise at night.",
]
REPLIES = [
    "That sounds nice. What happened next?",
    "I see. How did that make you feel?",
    "Interesting. Tell me more about it.",
    "Thanks for sharing that with me.",
    "Good to know. Anything else on your mind?",
]


@dataclass
class Fact:
    statement: str
    question: str
    answer: str
    stated_at: int  # exchange index
    asked_at: int


def generate(exchanges: int, n_facts: int, seed: int) -> tuple[list[str], list[str], list[Fact]]:
    """User lines, assistant lines and the planted facts with when they are asked."""
    rng = random.Random(seed)
    users = [rng.choice(FILLER) + " " + rng.choice(FILLER) for _ in range(exchanges)]
    replies = [rng.choice(REPLIES) for _ in range(exchanges)]
    facts: list[Fact] = []
    names = rng.sample(NAMES, len(NAMES))
    rels = rng.sample(RELATIONS, len(RELATIONS))
    things = rng.sample(THINGS, len(THINGS))
    items = rng.sample(ITEMS, len(ITEMS))
    places = rng.sample(PLACES, len(PLACES))
    early = int(exchanges * 0.4)
    slots = rng.sample(range(1, early), n_facts)
    for k, slot in enumerate(slots):
        kind = k % 3
        if kind == 0 and rels and names:
            rel, name = rels.pop(), names.pop()
            fact = Fact(
                f"By the way, my {rel}'s name is {name}.",
                f"What is my {rel}'s name?",
                name,
                slot,
                0,
            )
        elif kind == 1 and things:
            thing, code = things.pop(), str(rng.randint(1000, 9999))
            fact = Fact(
                f"Note this: the code for my {thing} is {code}.",
                f"What is the code for my {thing}?",
                code,
                slot,
                0,
            )
        elif items and places:
            item, place = items.pop(), places.pop()
            fact = Fact(
                f"For the record, I keep my {item} in the {place}.",
                f"Where do I keep my {item}?",
                place.split()[-1],
                slot,
                0,
            )
        else:
            continue
        fact.asked_at = rng.randint(max(slot + exchanges // 3, int(exchanges * 0.7)), exchanges - 1)
        users[slot] = fact.statement
        facts.append(fact)
    return users, replies, facts


@dataclass
class Score:
    evidence: float
    keyword: float | None
    compactions: int
    seconds: float


def run_one(
    budget: int,
    policy: str,
    users: Sequence[str],
    replies: Sequence[str],
    facts: Sequence[Fact],
    workdir: Path,
    summarizer_runtime: Any = None,
) -> Score:
    runtime = ScriptedRuntime(replies=list(replies), context_window=budget + 512)
    summarizer: Summarizer = (
        ModelSummarizer(summarizer_runtime, SummarizerSettings(max_new_tokens=64))
        if summarizer_runtime is not None
        else ExtractiveSummarizer(runtime.count_text)
    )
    db = workdir / f"fidelity-{budget}-{policy.replace('+', '_')}.db"
    started = time.perf_counter()
    hits = 0
    keyword_hits = 0
    with Agent.open(
        f"sqlite:///{db}",
        runtime,
        summarizer=summarizer,
        max_prompt_tokens=budget,
        reply_reserve=256,
        policy=policy,
        max_new_tokens=64,
    ) as agent:
        cid = agent.create_conversation(title=f"fidelity {budget} {policy}")
        evidence: dict[int, int] = {}
        by_time: dict[int, list[Fact]] = {}
        for f in facts:
            by_time.setdefault(f.asked_at, []).append(f)
        for i, text in enumerate(users):
            for fact in by_time.get(i, []):
                plan = agent.preview_prompt(cid, fact.question)
                shown = set(plan.window_ids) | set(plan.recalled_ids)
                if evidence[id(fact)] in shown:
                    hits += 1
                summary = plan.section("summary")
                if summary is not None and fact.answer in (summary.text or ""):
                    keyword_hits += 1
            reply = agent.send(cid, text)
            for fact in facts:
                if fact.stated_at == i:
                    evidence[id(fact)] = reply.user_message_id
        compactions = len(agent.summaries(cid))
    return Score(
        evidence=hits / len(facts),
        keyword=None if policy == "window" else keyword_hits / len(facts),
        compactions=compactions,
        seconds=time.perf_counter() - started,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exchanges", type=int, default=240)
    parser.add_argument("--facts", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--summarizer",
        choices=["extractive", "model"],
        default="extractive",
        help="extractive: the deterministic ExtractiveSummarizer; model: SmolLM2-135M",
    )
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)))
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    policies = [p for p in args.policies.split(",") if p]
    users, replies, facts = generate(args.exchanges, args.facts, args.seed)
    gaps = [f.asked_at - f.stated_at for f in facts]
    summarizer_runtime = None
    described = "ExtractiveSummarizer (deterministic, no model)"
    if args.summarizer == "model":
        from recursa.agent.runtime.local import load_local
        from recursa.agent.runtime.options import RuntimeOptions

        summarizer_runtime = load_local(name="smollm2-135m", options=RuntimeOptions(threads=1))
        described = "SmolLM2-135M-Instruct (greedy, summarizer templates v1)"
    print(
        f"Memory fidelity: {args.exchanges} exchanges, {len(facts)} planted facts, "
        f"seed {args.seed}; questions asked {min(gaps)}-{max(gaps)} exchanges after the fact."
    )
    print(f"Replies and token counts: scripted model (word tokenizer); summaries: {described}.")
    print()
    header = (
        f"{'budget':>6}  {'policy':<15} {'evidence recall':>15}  {'summary keyword':>15}  "
        f"{'summaries':>9}  {'time s':>6}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for budget in budgets:
            for policy in policies:
                s = run_one(budget, policy, users, replies, facts, Path(tmp), summarizer_runtime)
                kw = "-" if s.keyword is None else f"{s.keyword:.2f}"
                print(
                    f"{budget:>6}  {policy:<15} {s.evidence:>15.2f}  {kw:>15}  "
                    f"{s.compactions:>9}  {s.seconds:>6.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
