"""Measuring one configuration on the fidelity conversation, imported or compacted live.

A question's evidence counts as recalled when every evidence message id is in the
prompt plan that `preview_prompt` builds for it, verbatim (`window_ids`) or
recalled (`recalled_ids`). The summary keyword rate is scored apart: the answer
words all appear in the summary text the plan carries.

Both modes ask every question at the end of the conversation, as previews (nothing
is stored for a question). A pronoun question is asked right after its setup
exchange ("Let's talk about my sister again." / "Sure, what about her?"); the
setups of the pronoun questions asked before it stay in the conversation, as they
would in a chat where the user asks one thing after another.

* imported: the conversation is a document loaded with `import_conversation`
  (no compaction, no model call); each pronoun question gets its own import
  with the setups so far appended. One database serves every configuration
  and budget (imports do not depend on either).
* live: the conversation is driven through `Agent.send`, turn by turn, by a
  scripted model whose replies are the generated assistant messages, so
  compaction runs after replies as in a real chat; setups are sent the same way.
  The store's clock follows the script, so messages carry their session's date.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from recursa.agent import Agent
from recursa.agent.errors import ConfigError
from recursa.agent.planning.plan import PromptPlan
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.agent.summarize import Summarizer

from benchmarks.fidelity.data import Dialogue, Message, Question

MODES = ("imported", "live")
REPLY_RESERVE = 256

SummarizerFactory = Callable[[ScriptedRuntime], Summarizer]


@dataclass(frozen=True)
class Config:
    """One memory configuration: a policy and, for recall, its embedder setting."""

    key: str  # what --configs names it
    label: str
    policy: str
    embedder: str | None = None  # the recall.embedder setting; None: leave it unset


CONFIGS = (
    Config("window", "window", "window"),
    Config("summary", "summary", "summary"),
    Config("full-text", "summary+recall full-text", "summary+recall", "none"),
    Config("hybrid", "summary+recall hybrid", "summary+recall", "minilm"),
)


@dataclass
class Run:
    """What one configuration scored in one mode at one budget."""

    config: Config
    mode: str
    budget: int
    kinds: list[str] = field(default_factory=list)  # per question
    texts: list[str] = field(default_factory=list)
    recalled: list[bool] = field(default_factory=list)
    keyword: list[bool] = field(default_factory=list)
    preview_s: list[float] = field(default_factory=list)
    recall_tokens: list[int] = field(default_factory=list)  # this question's recall block
    setup_s: float = 0.0
    summaries: int = 0
    note: str | None = None
    unavailable: str | None = None

    def rate(self, kind: str | None = None) -> float | None:
        hits = [r for k, r in zip(self.kinds, self.recalled, strict=True) if kind in (None, k)]
        return sum(hits) / len(hits) if hits else None

    def missed(self) -> list[str]:
        return [t for t, r in zip(self.texts, self.recalled, strict=True) if not r]

    def keyword_rate(self) -> float | None:
        return sum(self.keyword) / len(self.keyword) if self.keyword else None


class Unavailable(Exception):
    """A configuration the code under test cannot run yet; `detail` says why in full."""

    def __init__(self, short: str, detail: str | None = None) -> None:
        super().__init__(short)
        self.detail = detail


def open_agent(
    db_url: str, runtime: ScriptedRuntime, config: Config, budget: int, summarizer: Summarizer
) -> tuple[Agent, str | None]:
    """An agent for the configuration, and a note when it had to fall back."""
    settings: dict[str, Any] = {
        "policy": config.policy,
        "max_prompt_tokens": budget,
        "reply_reserve": REPLY_RESERVE,
        "max_new_tokens": 128,
    }
    if config.embedder is None:
        return Agent.open(db_url, runtime, summarizer=summarizer, **settings), None
    try:
        recall = {"embedder": config.embedder}
        return Agent.open(db_url, runtime, summarizer=summarizer, recall=recall, **settings), None
    except ConfigError as exc:
        message = str(exc)
        if "embedder" not in message:
            raise
        missing = "extra inputs" in message.lower() or "unknown setting" in message.lower()
        if missing and config.embedder == "none":
            # Without the setting, recall is full-text only: the row is still meaningful.
            note = "no recall.embedder setting yet: recall as it is, full-text only"
            return Agent.open(db_url, runtime, summarizer=summarizer, **settings), note
        if missing:
            raise Unavailable("n/a (embedder setting missing)") from exc
        short = f"n/a (recall.embedder={config.embedder!r} refused)"
        raise Unavailable(short, message) from exc


def runtime_for(budget: int, replies: Sequence[str] = ()) -> ScriptedRuntime:
    # The context window leaves the reply reserve and safety margin above the budget,
    # so the budget is exactly max_prompt_tokens.
    return ScriptedRuntime(replies=list(replies), default=None, context_window=budget + 512)


def score(run: Run, question: Question, plan: PromptPlan, evidence_ids: Sequence[int]) -> None:
    shown = set(plan.window_ids) | set(plan.recalled_ids)
    run.kinds.append(question.kind)
    run.texts.append(question.text)
    run.recalled.append(all(i in shown for i in evidence_ids))
    run.recall_tokens.append(sum(s.tokens for s in plan.recall_sections if not s.before_message_id))
    summary = plan.section("summary")
    text = (summary.text or "") if summary is not None else ""
    run.keyword.append(all(_mentions(text, k) for k in question.keywords))


def _mentions(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None


def _preview(agent: Agent, cid: int, text: str, times: list[float]) -> PromptPlan:
    started = time.perf_counter()
    plan = agent.preview_prompt(cid, text)
    times.append(time.perf_counter() - started)
    return plan


# imported ------------------------------------------------------------------------------------


def measure_imported(
    dialogue: Dialogue,
    questions: Sequence[Question],
    configs: Sequence[Config],
    budgets: Sequence[int],
    workdir: Path,
    make_summarizer: SummarizerFactory,
) -> tuple[list[Run], float]:
    """Every configuration and budget over the imported conversation; and the import time."""
    url = f"sqlite:///{workdir / 'imported.db'}"
    started = time.perf_counter()
    conversation_of: list[int] = []
    with Agent.open(url, runtime_for(max(budgets)), policy="window") as agent:
        base = agent.import_conversation(dialogue.document())
        setups: list[Message] = []
        for q in questions:
            if q.setup is None:
                conversation_of.append(base)
            else:
                setups.extend(q.setup)
                conversation_of.append(agent.import_conversation(dialogue.document(setups)))
        ids = {cid: [m.id for m in agent.messages(cid)] for cid in dict.fromkeys(conversation_of)}
    import_s = time.perf_counter() - started

    runs: list[Run] = []
    for config in configs:
        for n, budget in enumerate(budgets):
            run = Run(config, "imported", budget)
            runs.append(run)
            runtime = runtime_for(budget)
            try:
                agent, run.note = open_agent(url, runtime, config, budget, make_summarizer(runtime))
            except Unavailable as exc:
                run.unavailable, run.note = str(exc), exc.detail
                continue
            with agent:
                if n == 0:
                    run.setup_s = _prepare(agent, list(ids))
                for q, cid in zip(questions, conversation_of, strict=True):
                    plan = _preview(agent, cid, q.text, run.preview_s)
                    score(run, q, plan, [ids[cid][e] for e in q.evidence])
    return runs, import_s


def _prepare(agent: Agent, conversation_ids: Sequence[int]) -> float:
    """Embed the imported messages where the agent can, and warm each conversation once.

    The first preview of an imported conversation counts every message's tokens
    (and may compute missing vectors); that is set-up, not a question's cost.
    """
    started = time.perf_counter()
    backfill = getattr(agent, "backfill_embeddings", None)
    for cid in conversation_ids:
        if backfill is not None:
            backfill(cid)
        agent.preview_prompt(cid, "")
    return time.perf_counter() - started


# live ----------------------------------------------------------------------------------------


class ScriptedClock:
    """The times the store stamps new messages with: the script's, not the wall clock's.

    A live chat spans days; without this every message of the drive would carry
    the minute the benchmark ran, and questions about dates would have no answer.
    `set(user_time, reply_time)` before each turn: the first stamp gets the first
    time, every later stamp the last one.
    """

    def __init__(self) -> None:
        self._times: list[datetime] = []

    def set(self, *times: datetime) -> None:
        self._times = list(times)

    def __call__(self) -> datetime:
        if not self._times:
            return datetime.now(UTC)
        return self._times.pop(0) if len(self._times) > 1 else self._times[0]

    @contextmanager
    def installed(self) -> Iterator[bool]:
        """Stamp messages with this clock while inside; yields whether it could."""
        module = importlib.import_module("recursa.memory.messages")
        if not callable(getattr(module, "utcnow", None)):
            yield False
            return
        with mock.patch.object(module, "utcnow", self):
            yield True


def measure_live(
    dialogue: Dialogue,
    questions: Sequence[Question],
    config: Config,
    budget: int,
    workdir: Path,
    make_summarizer: SummarizerFactory,
) -> Run:
    """One configuration and budget over the conversation driven live."""
    run = Run(config, "live", budget)
    url = f"sqlite:///{workdir / f'live-{config.key}-{budget}.db'}"
    runtime = runtime_for(budget, [a.content for _, a in dialogue.exchanges()])
    try:
        agent, run.note = open_agent(url, runtime, config, budget, make_summarizer(runtime))
    except Unavailable as exc:
        run.unavailable, run.note = str(exc), exc.detail
        return run
    clock = ScriptedClock()
    with agent, clock.installed() as stamped:
        cid = agent.create_conversation(title=f"fidelity live {config.key} {budget}")
        started = time.perf_counter()
        ids: list[int] = []
        for user, assistant in dialogue.exchanges():
            ids.extend(_turn(agent, cid, clock, user, assistant))
        run.setup_s = time.perf_counter() - started
        first = agent.messages(cid, limit=1)[0]
        if not stamped or first.created_at.replace(tzinfo=UTC) != dialogue.messages[0].created_at:
            run.note = "live messages carry the run's own time, not their session's date"
        # Questions without a setup first, then the pronoun ones, each after its setup.
        plans: dict[int, PromptPlan] = {}
        for i, q in enumerate(questions):
            if q.setup is None:
                plans[i] = _preview(agent, cid, q.text, run.preview_s)
        for i, q in enumerate(questions):
            if q.setup is not None:
                runtime.push(q.setup[1].content)
                _turn(agent, cid, clock, *q.setup)
                plans[i] = _preview(agent, cid, q.text, run.preview_s)
        for i, q in enumerate(questions):
            score(run, q, plans[i], [ids[e] for e in q.evidence])
        run.summaries = len(agent.summaries(cid))
    return run


def _turn(
    agent: Agent, cid: int, clock: ScriptedClock, user: Message, assistant: Message
) -> list[int]:
    clock.set(user.created_at, assistant.created_at)
    reply = agent.send(cid, user.content)
    if reply.text != assistant.content:
        raise RuntimeError(
            f"The scripted reply came back as {reply.text!r}, not {assistant.content!r}: "
            "the turn called the model more than once or cut the reply."
        )
    return [reply.user_message_id, reply.message_id]
