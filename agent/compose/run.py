"""Recursive long-form generation: a text that grows past the context window from its own summary.

``compose(agent, prompt, target_tokens=...)`` writes a text step by step. Each
step's prompt is the instructions plus the running summary of the text before
the verbatim tail (one system message), the tail itself (the opening as a user
message, each earlier step as an assistant message) and a short constant cue.
It is planned by the same planner and exact token budget as a chat turn; when
the tail outgrows its share of the budget, its oldest steps are folded into the
summary by the same recursive summarizer. The step is generated (at most
``step_tokens``), streamed, and stored as an assistant message of a conversation
of kind "composition" with its prompt trace, in one transaction. Then the next
step, until ``target_tokens`` of new text, a stop string, the model's end of
text, degenerate repetition, or a cancel.

Stop reasons (in the final chunk's result): "target" (target_tokens of new
text written), "stop_string" (a stop string was generated; the text ends
before it), "eos" (the model ended a step at its end of text without writing
anything: with a chat model the end-of-turn token ends every reply, so it ends
only the step, and a step that ends before adding text means the model has
nothing more to add), "repetition" (a step still looped with the strongest
repetition controls, see `recursa.agent.compose.repetition`), "cancelled".

Because every step is committed before the next one starts, a composition
killed at any point resumes from its last stored step
(``resume_composition(agent, id)``): no step is lost or written twice, and the
stored steps concatenate exactly to the text that was emitted.

Stored layout of a composition conversation: seq 1 is a system message holding
the instructions, with the composition's parameters in its metadata
(``metadata["composition"]``); then the opening as a user message (when there
is one); then one assistant message per step (``metadata["composition_step"]``).
Each step's text includes the separator that joins it to the text before it.

    with Agent.open(max_prompt_tokens=512) as agent:
        for chunk in compose(agent, "Today the weather", target_tokens=1000):
            print(chunk.text, end="")
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from recursa.agent.boundary import CompactionReport
from recursa.agent.compaction.decide import (
    Marks,
    WindowItem,
    decide_compaction,
    water_marks,
)
from recursa.agent.compaction.fold import CompactionJob, run_compaction
from recursa.agent.compose.presets import COMPOSE_TEMPLATES, Preset, get_preset
from recursa.agent.compose.repetition import RepetitionGuard, RepetitionSettings, Verdict
from recursa.agent.errors import (
    BudgetError,
    InvalidInputError,
    ModelError,
    RecursaError,
    StoreError,
)
from recursa.agent.planning.plan import (
    NewText,
    PromptPlan,
    build_plan,
    compute_budget,
    flexible_budget,
    message_cost,
)
from recursa.agent.planning.prompt import message_costs, window_records
from recursa.agent.recall import usable
from recursa.agent.runtime.protocol import (
    CancelToken,
    ChatMessage,
    GenerationParams,
    Runtime,
    Usage,
)
from recursa.agent.settings import Settings
from recursa.agent.summarize import ModelSummarizer, Summarizer
from recursa.agent.templates import Templates
from recursa.memory.records import ConversationRecord, MessageRecord

if TYPE_CHECKING:
    from recursa.agent.agent import Agent

__all__ = [
    "DEFAULT_STEP_TOKENS",
    "CompositionChunk",
    "CompositionFailedError",
    "CompositionResult",
    "CompositionSpec",
    "CompositionStep",
    "CompositionStream",
    "StopReason",
    "compose",
    "composition_text",
    "resume_composition",
]

DEFAULT_STEP_TOKENS = 128
StopReason = Literal["target", "stop_string", "eos", "repetition", "cancelled"]
# Stop reasons after which `resume_composition` has nothing more to write (unless the
# target is raised).
_FINAL: frozenset[str] = frozenset({"target", "stop_string", "eos", "repetition"})
_SPEC_KEY = "composition"
_STEP_KEY = "composition_step"
_OPENING_KEY = "composition_opening"


class CompositionFailedError(ModelError):
    """The model failed mid-composition; every finished step is stored, resume to go on."""

    def __init__(self, message: str, composition_id: int) -> None:
        super().__init__(message)
        self.composition_id = composition_id


# --- boundary models ---------------------------------------------------------------------


class CompositionSpec(BaseModel):
    """A composition's parameters, stored with it so that a resume continues the same way."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    target_tokens: int = Field(gt=0)
    step_tokens: int = Field(gt=0)
    instructions: str
    opening: str = ""
    stop: tuple[str, ...] = ()
    seed: int | None = None
    preset: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    repetition: dict[str, Any] = Field(default_factory=dict)
    templates: str = COMPOSE_TEMPLATES
    stop_reason: StopReason | None = None


class CompositionStep(BaseModel):
    """One stored step: its message, its size and how it ended."""

    model_config = ConfigDict(frozen=True)

    index: int
    message_id: int
    seq: int
    text: str
    tokens: int
    finish_reason: str
    status: str = "complete"
    prompt_tokens: int
    budget: int
    summary_id: int | None = None
    repeated: float = 0.0
    control_level: int = 0


class CompositionResult(BaseModel):
    """How a composition (or one resumed run of it) ended."""

    model_config = ConfigDict(frozen=True)

    composition_id: int
    stop_reason: StopReason
    tokens: int = Field(description="Tokens of generated text in the whole composition.")
    target_tokens: int
    steps: int = Field(description="Stored steps in the whole composition.")
    new_steps: int = Field(description="Steps written by this run.")
    compactions: int = Field(description="Summaries in the composition's chain.")
    opening: str = ""
    text: str = Field(description="All generated text (every stored step, concatenated).")

    @property
    def document(self) -> str:
        """The whole text: the opening followed by every step."""
        return self.opening + self.text


class CompositionChunk(BaseModel):
    """One item of a composition stream.

    `event` is "text" for generated text, "compacting" when the tail is being
    folded into the summary, "step" when a step has been stored (`step`), and
    "done" for the last item (`result`, with the stop reason). Every chunk
    carries the progress counters.
    """

    model_config = ConfigDict(frozen=True)

    event: Literal["text", "compacting", "step", "done"] = "text"
    text: str = ""
    tokens: int = 0
    target_tokens: int = 0
    compactions: int = 0
    step: CompositionStep | None = None
    result: CompositionResult | None = None


class CompositionStream:
    """An iterator of `CompositionChunk`s; the last one carries the `CompositionResult`.

    The composition already exists (`composition_id`) when this is returned.
    `cancel()` (from any thread) stops it: the partial step is stored as
    interrupted and the stream ends with stop reason "cancelled". Leaving the
    loop early and calling `close()` does the same.
    """

    def __init__(
        self, composition_id: int, gen: Generator[CompositionChunk, None, None], cancel: CancelToken
    ) -> None:
        self.composition_id = composition_id
        self._gen = gen
        self._cancel = cancel
        self.result: CompositionResult | None = None

    def cancel(self) -> None:
        self._cancel.cancel()

    def __iter__(self) -> Iterator[CompositionChunk]:
        return self

    def __next__(self) -> CompositionChunk:
        chunk = next(self._gen)
        if chunk.result is not None:
            self.result = chunk.result
        return chunk

    def close(self) -> None:
        self._cancel.cancel()
        self._gen.close()

    def __enter__(self) -> CompositionStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self) -> CompositionResult:
        """Consume the stream and return the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result


# --- public functions --------------------------------------------------------------------


def compose(
    agent: Agent,
    prompt: str | None = None,
    *,
    target_tokens: int,
    step_tokens: int = DEFAULT_STEP_TOKENS,
    instructions: str | None = None,
    stop: str | Sequence[str] | None = None,
    seed: int | None = None,
    preset: str | None = None,
    params: GenerationParams | None = None,
    repetition: RepetitionSettings | bool | None = None,
    title: str | None = None,
    summarizer: Summarizer | None = None,
    cancel: CancelToken | None = None,
) -> CompositionStream:
    """Start a composition and return its stream of chunks.

    `prompt` is the opening of the text (None or "" with no preset: an empty
    start); `preset` names a shipped starting point (its opening, instructions
    and sampler settings; `prompt` and `instructions` override them). `params`
    replaces the generation parameters from settings (max_new_tokens, seed and
    stop are set per step). `repetition` tunes or (False) turns off the loop
    guard. Input is validated before anything is stored: InvalidInputError for
    bad values or an unknown preset, BudgetError when a step cannot fit.
    """
    settings = agent.settings
    found: Preset | None = get_preset(preset) if preset is not None else None
    target_tokens = _positive("target_tokens", target_tokens)
    step_tokens = _positive("step_tokens", step_tokens)
    stops = _stops(stop)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidInputError(f"seed must be an integer, not {seed!r}.")
    if prompt is not None:
        prompt = _text("prompt", prompt)
    opening = prompt if prompt and prompt.strip() else (found.opening if found else "")
    if instructions is not None:
        instructions = _text("instructions", instructions)
        if not instructions.strip():
            raise InvalidInputError("The instructions are empty; leave them out for the default.")
    templates = Templates.load(COMPOSE_TEMPLATES)
    chosen = instructions or (found.instructions if found and found.instructions else None)
    final_instructions = chosen or templates.render("default_instructions")
    base = params or settings.generation.params()
    if seed is None:
        seed = base.seed
    if found is not None and params is None:
        base = base.model_copy(
            update={
                k: v
                for k, v in (("temperature", found.temperature), ("top_p", found.top_p))
                if v is not None
            }
        )
    guard_settings = _repetition(repetition)
    spec = CompositionSpec(
        target_tokens=target_tokens,
        step_tokens=step_tokens,
        instructions=final_instructions,
        opening=opening,
        stop=stops,
        seed=seed,
        preset=preset,
        params=base.model_dump(mode="json", exclude={"max_new_tokens", "seed", "stop"}),
        repetition=guard_settings.to_dict(),
    )
    runtime = agent.runtime  # loads the model: only once the input is known to be good
    _check_budget(runtime, settings, templates, spec)

    store = agent._store
    conv = store.create_conversation(
        title=title or _title(opening, preset),
        system_prompt=final_instructions,
        model=agent.model_spec,
        kind="composition",
    )
    try:
        header = store.append_message(
            conv.id,
            "system",
            final_instructions,
            metadata={_SPEC_KEY: spec.model_dump(mode="json")},
        )
        if opening:
            store.append_message(conv.id, "user", opening, metadata={_OPENING_KEY: True})
    except RecursaError:
        store.delete_conversation(conv.id)  # nothing half-written
        raise
    token = cancel or CancelToken()
    run = _Run(
        agent=agent,
        conv=conv,
        header=header,
        spec=spec,
        settings=agent.settings_for(conv.id),
        runtime=runtime,
        templates=templates,
        summarizer=summarizer,
        cancel=token,
        guard=RepetitionGuard(guard_settings),
    )
    run.guard.remember(opening)
    run.last_seq = store.messages(conv.id, newest_first=True, limit=1)[0].seq
    run.doc_tail = opening[-1:]
    return CompositionStream(conv.id, run.steps(), token)


def resume_composition(
    agent: Agent,
    composition_id: int,
    *,
    target_tokens: int | None = None,
    summarizer: Summarizer | None = None,
    cancel: CancelToken | None = None,
) -> CompositionStream:
    """Continue a stored composition from its last stored step.

    A composition that was interrupted (killed, cancelled, failed) goes on
    until its target; one that already ended (target, stop string, end of
    text, repetition) yields only its final chunk, unless `target_tokens`
    raises the target above what was written. Raises NotFoundError for an
    unknown id and InvalidInputError for a conversation that is not a
    composition.
    """
    store = agent._store
    conv = store.get_conversation(composition_id)
    if conv.kind != "composition":
        raise InvalidInputError(
            f"Conversation {composition_id} is a {conv.kind}, not a composition; "
            "list compositions with their kind to find the right id."
        )
    first = store.messages(conv.id, limit=1)
    header = first[0] if first else None
    if header is None or _SPEC_KEY not in header.metadata:
        raise InvalidInputError(
            f"Composition {composition_id} has no stored parameters (its first message); "
            "it cannot be resumed. Start a new one."
        )
    try:
        spec = CompositionSpec.model_validate(header.metadata[_SPEC_KEY])
    except ValidationError as exc:
        raise InvalidInputError(
            f"Composition {composition_id} has unreadable stored parameters ({exc}); "
            "start a new one."
        ) from exc
    if target_tokens is not None:
        spec = spec.model_copy(update={"target_tokens": _positive("target_tokens", target_tokens)})
    records = [r for r in store.messages(conv.id) if usable(r)]
    steps = [r for r in records if r.role == "assistant" and _STEP_KEY in r.metadata]
    generated = sum(int(r.metadata.get("tokens", 0)) for r in steps)
    runtime = agent.runtime
    templates = Templates.load(spec.templates)
    guard = RepetitionGuard(RepetitionSettings.from_dict(spec.repetition))
    opening = next((r.content for r in records if r.metadata.get(_OPENING_KEY)), "")
    guard.remember(opening + "".join(r.content for r in steps))
    if steps:
        guard.level = int(steps[-1].metadata.get("control_level", 0))
        guard.calm = int(steps[-1].metadata.get("calm", 0))
    token = cancel or CancelToken()
    run = _Run(
        agent=agent,
        conv=conv,
        header=header,
        spec=spec,
        settings=agent.settings_for(conv.id),
        runtime=runtime,
        templates=templates,
        summarizer=summarizer,
        cancel=token,
        guard=guard,
    )
    run.tokens = generated
    run.index = max((int(r.metadata[_STEP_KEY]) for r in steps), default=0)
    run.prior_text = "".join(r.content for r in steps)
    run.last_seq = store.messages(conv.id, newest_first=True, limit=1)[0].seq
    run.doc_tail = (opening + run.prior_text)[-1:]
    run.last_finish = str(steps[-1].metadata.get("finish_reason")) if steps else None
    run.compactions = len(store.summary_chain(conv.id))
    ended = spec.stop_reason in _FINAL and not (
        target_tokens is not None and spec.target_tokens > generated
    )
    if ended:
        assert spec.stop_reason is not None
        return CompositionStream(conv.id, run.finished(spec.stop_reason), token)
    if spec.stop_reason is not None or target_tokens is not None:
        run.save_spec(spec.model_copy(update={"stop_reason": None}))
    return CompositionStream(conv.id, run.steps(), token)


def composition_text(agent: Agent, composition_id: int) -> str:
    """The stored document: the opening followed by every stored step."""
    records = [r for r in agent._store.messages(composition_id) if usable(r)]
    return "".join(
        r.content
        for r in records
        if r.metadata.get(_OPENING_KEY) or (r.role == "assistant" and _STEP_KEY in r.metadata)
    )


# --- the run -----------------------------------------------------------------------------


@dataclass
class _Run:
    """One run of a composition: the loop state between steps."""

    agent: Agent
    conv: ConversationRecord
    header: MessageRecord
    spec: CompositionSpec
    settings: Settings
    runtime: Runtime
    templates: Templates
    summarizer: Summarizer | None
    cancel: CancelToken
    guard: RepetitionGuard
    tokens: int = 0
    index: int = 0
    new_steps: int = 0
    compactions: int = 0
    prior_text: str = ""
    last_seq: int = 0
    doc_tail: str = ""
    last_finish: str | None = None
    pieces_all: list[str] = field(default_factory=list)
    _own_summary_runtime: Runtime | None = None

    @property
    def use_summary(self) -> bool:
        return self.settings.policy != "window"

    # -- the loop -------------------------------------------------------------------------

    def steps(self) -> Generator[CompositionChunk, None, None]:
        try:
            yield from self._loop()
        finally:
            if self._own_summary_runtime is not None:
                self._own_summary_runtime.close()

    def finished(self, reason: StopReason) -> Generator[CompositionChunk, None, None]:
        yield self._done(reason)

    def _loop(self) -> Generator[CompositionChunk, None, None]:
        spec = self.spec
        while True:
            if self.tokens >= spec.target_tokens:
                yield self._finish("target")
                return
            if self.cancel.cancelled:
                yield self._finish("cancelled")
                return
            reports: list[CompactionReport] = []
            t0 = time.perf_counter()
            if self.use_summary:
                job = self._compaction_job()
                if job is not None:
                    yield self._progress("compacting")
                    reports.append(self._run_compaction(job))
            plan = self._plan()
            if plan.dropped_ids and self.use_summary:
                # The tail cannot fit beside the summary: fold what was dropped, plan again.
                dropped = self.agent._store.messages_by_ids(plan.dropped_ids)
                job = self._compaction_job(must_evict_through_seq=max(r.seq for r in dropped))
                if job is not None:
                    yield self._progress("compacting")
                    reports.append(self._run_compaction(job))
                plan = self._plan()
            plan_s = time.perf_counter() - t0
            outcome = yield from self._step(plan, reports, plan_s)
            if outcome is not None:
                yield self._finish(outcome)
                return

    def _step(
        self, plan: PromptPlan, reports: list[CompactionReport], plan_s: float
    ) -> Generator[CompositionChunk, None, StopReason | None]:
        """Generate, stream and store one step; returns a stop reason when the composition ends."""
        spec, runtime, settings = self.spec, self.runtime, self.settings
        notes: list[str] = [f"composition step {self.index + 1}"]
        room = runtime.context_window - plan.total_tokens - settings.budget.safety_margin
        max_new = min(spec.step_tokens, spec.target_tokens - self.tokens)
        if max_new > room:
            notes.append(f"step cut to {max(1, room)} tokens: the context window is full")
            max_new = max(1, room)
        params = self._params(max_new)
        pieces: list[str] = []
        usage: Usage | None = None
        separator = ""
        status: Literal["complete", "interrupted"] = "complete"
        t_gen = time.perf_counter()
        try:
            stream = runtime.stream(
                plan.messages, params, cache_key=f"composition-{self.conv.id}", cancel=self.cancel
            )
            try:
                for piece in stream:
                    if not piece:
                        continue
                    if not pieces:
                        separator = self._separator(piece)
                        if separator:
                            pieces.append(separator)
                            yield self._progress("text", separator)
                    pieces.append(piece)
                    yield self._progress("text", piece)
                usage = stream.usage
            finally:
                stream.close()
        except (GeneratorExit, KeyboardInterrupt):
            # The reader went away (or Ctrl-C): keep what it already received.
            if pieces:
                self._store_step(
                    plan,
                    params,
                    pieces,
                    usage,
                    "interrupted",
                    reports,
                    notes,
                    plan_s,
                    t_gen,
                    None,
                    "cancelled",
                )
            self.save_spec(self.spec.model_copy(update={"stop_reason": "cancelled"}))
            raise
        except Exception as exc:  # stored as far as it got, then re-raised typed
            if pieces:
                self._store_step(
                    plan,
                    params,
                    pieces,
                    usage,
                    "interrupted",
                    reports,
                    [*notes, f"generation failed: {exc}"],
                    plan_s,
                    t_gen,
                    None,
                    "error",
                )
            raise CompositionFailedError(
                f"The model failed during step {self.index + 1} ({exc}). The finished steps "
                f"are stored; resume with composition id {self.conv.id}.",
                self.conv.id,
            ) from exc
        finish = usage.finish_reason if usage is not None else "stop"
        if self.cancel.cancelled or finish == "cancelled":
            status, finish = "interrupted", "cancelled"
        text = "".join(pieces)
        verdict = self.guard.observe(text) if status == "complete" else None
        step = self._store_step(
            plan, params, pieces, usage, status, reports, notes, plan_s, t_gen, verdict, finish
        )
        yield self._progress("step", step=step)
        if finish == "cancelled":
            return "cancelled"
        if finish == "stop":
            return "stop_string"
        if finish == "eos" and not text.strip():
            # At a step boundary the end-of-turn token only ends the step; a step that
            # ends before writing anything means the model has nothing more to add.
            return "eos"
        if verdict is not None and verdict.action == "stop":
            return "repetition"
        return None

    # -- pieces of a step -------------------------------------------------------------------

    def _params(self, max_new: int) -> GenerationParams:
        spec = self.spec
        update: dict[str, Any] = {"max_new_tokens": max_new}
        base = GenerationParams(**spec.params)
        seed = spec.seed
        if seed is not None:
            # One seed per step, so a resumed step samples as the original run would have.
            update["seed"] = seed + self.index
        update["stop"] = tuple(dict.fromkeys((*self.settings.generation.stop, *spec.stop)))
        controls = self.guard.controls()
        if controls is not None:
            update["repetition_penalty"] = max(base.repetition_penalty, controls.repetition_penalty)
            n = controls.no_repeat_ngram_size
            if base.no_repeat_ngram_size:
                n = min(n, base.no_repeat_ngram_size) if n else base.no_repeat_ngram_size
            update["no_repeat_ngram_size"] = n
        return base.model_copy(update=update)

    def _separator(self, first_piece: str) -> str:
        """What joins the step to the text before it, so the stored steps read as one text."""
        if not self.doc_tail or first_piece[:1].isspace() or self.doc_tail.isspace():
            return ""
        return "\n\n" if self.last_finish == "eos" else " "

    def _store_step(
        self,
        plan: PromptPlan,
        params: GenerationParams,
        pieces: list[str],
        usage: Usage | None,
        status: Literal["complete", "interrupted"],
        reports: list[CompactionReport],
        notes: list[str],
        plan_s: float,
        t_gen: float,
        verdict: Verdict | None,
        finish: str,
    ) -> CompositionStep:
        from recursa.memory.store import NewTrace

        store = self.agent._store
        text = "".join(pieces)
        if usage is not None and usage.completion_tokens:
            tokens = usage.completion_tokens
        else:
            tokens = self.runtime.count_text(text) if text.strip() else 0
        index = self.index + 1
        metadata: dict[str, Any] = {
            _STEP_KEY: index,
            "tokens": tokens,
            "finish_reason": finish,
            "control_level": self.guard.level,
            "calm": self.guard.calm,
        }
        if verdict is not None:
            metadata["repeated"] = round(verdict.repeated, 4)
            if verdict.action != "ok":
                metadata["repetition"] = verdict.action
                notes.append(
                    f"repetition: {verdict.repeated:.0%} of the step's {self.guard.settings.n}-"
                    f"grams were already written; "
                    + (
                        "stopping"
                        if verdict.action == "stop"
                        else f"control level {verdict.level} for the next step"
                    )
                )
        timings: dict[str, Any] = {
            "plan_s": round(plan_s, 6),
            "generate_s": round(time.perf_counter() - t_gen, 6),
            "compactions": [r.model_dump(mode="json") for r in reports],
        }
        if usage is not None and usage.time_to_first_token_s is not None:
            timings["ttft_s"] = usage.time_to_first_token_s
        trace = NewTrace(
            model=self.runtime.name,
            budget=plan.budget,
            total_tokens=plan.total_tokens,
            summary_id=plan.summary_id,
            window_ids=plan.window_ids,
            plan=plan.model_dump(mode="json"),
            params=params.model_dump(mode="json"),
            usage=usage.model_dump(mode="json") if usage is not None else {},
            timings=timings,
            notes=notes,
        )
        message, _ = store.add_reply(
            self.conv.id, text, status=status, metadata=metadata, trace=trace
        )
        if message.seq != self.last_seq + 1:
            # Someone else appended to this composition since our last step: two writers
            # would interleave steps, so this one steps aside.
            store.update_message(message.id, metadata={**metadata, "superseded": True})
            raise StoreError(
                f"Another process is writing composition {self.conv.id} (message seq "
                f"{message.seq} after {self.last_seq}); this run stopped. Resume it once the "
                "other has finished."
            )
        self.last_seq = message.seq
        self.index = index
        self.new_steps += 1
        self.tokens += tokens
        self.pieces_all.append(text)
        if text:
            self.doc_tail = text[-1:]
            self.last_finish = finish
        return CompositionStep(
            index=index,
            message_id=message.id,
            seq=message.seq,
            text=text,
            tokens=tokens,
            finish_reason=finish,
            status=status,
            prompt_tokens=plan.total_tokens,
            budget=plan.budget,
            summary_id=plan.summary_id,
            repeated=verdict.repeated if verdict is not None else 0.0,
            control_level=self.guard.level,
        )

    # -- planning and compaction ---------------------------------------------------------------

    def _budget(self) -> int:
        return compute_budget(self.runtime.context_window, self.settings.budget)

    def _plan(self) -> PromptPlan:
        store = self.agent._store
        summary = store.latest_summary(self.conv.id) if self.use_summary else None
        covered = summary.covers_through_seq if summary else 0
        budget = self._budget()
        window, costs = self._window(covered, budget)
        cue = self.templates.render("continue", started=bool(window) or summary is not None)

        def cost_of(r: MessageRecord) -> int:
            if r.id not in costs:
                costs.update(self._costs([r]))
            return costs[r.id]

        return build_plan(
            counter=self.runtime,
            templates=self.templates,
            system_prompt=self.spec.instructions,
            new=NewText(cue),
            budget=budget,
            budget_settings=self.settings.budget,
            policy="summary" if self.use_summary else "window",
            summary=summary,
            window=window,
            cost_of=cost_of,
            conversation_id=self.conv.id,
            model=self.runtime.name,
            context_window=self.runtime.context_window,
        )

    def _window(self, after_seq: int, budget: int) -> tuple[list[MessageRecord], dict[int, int]]:
        """The text after `after_seq` (the opening and the steps), read as a chat window is."""
        return window_records(
            self.agent._store, self.conv, after_seq, budget, self.runtime, self.header.id
        )

    def _costs(self, records: Sequence[MessageRecord]) -> dict[int, int]:
        return message_costs(self.agent._store, self.runtime, records)

    def _marks(self) -> tuple[Marks, int]:
        system = self.templates.render("system", system_prompt=self.spec.instructions, summary=None)
        system_tokens = self.runtime.count_tokens([{"role": "system", "content": system}])
        flex = flexible_budget(self._budget(), system_tokens)
        cap = max(16, int(self.settings.budget.summary_share * flex))
        return water_marks(flex, self.settings.budget), cap

    def _compaction_job(self, *, must_evict_through_seq: int = 0) -> CompactionJob | None:
        """Decide whether the tail's oldest steps go into the summary now (no model call)."""
        store = self.agent._store
        marks, cap = self._marks()
        latest = store.latest_summary(self.conv.id)
        covered = latest.covers_through_seq if latest else 0
        records = [
            r
            for r in store.messages(self.conv.id, after_seq=covered)
            if usable(r) and r.role != "system"
        ]
        costs = self._costs(records)
        # Every step is its own unit of eviction: the decision groups messages into
        # exchanges that start at a "user" message, so each item is labelled as one.
        items = [WindowItem(r.id, r.seq, "user", costs[r.id]) for r in records]
        decision = decide_compaction(
            items, marks, covered_through_seq=covered, must_evict_through_seq=must_evict_through_seq
        )
        if not decision.needed:
            return None
        return CompactionJob(
            conv=self.conv,
            settings=self.settings,
            runtime=self.runtime,
            latest=latest,
            records=records,
            decision=decision,
            summary_cap=cap,
            start=time.perf_counter(),
        )

    def _run_compaction(self, job: CompactionJob) -> CompactionReport:
        """Fold the job's steps into a new summary and store it, as a chat compaction does.

        A summarizer failure is reported, not raised: the step goes on with the
        plain tail, like a chat turn does.
        """
        report = run_compaction(
            self.agent._store,
            job,
            lambda _settings, _runtime: self._summarizer(),
            when="before_reply",
        )
        if report.status == "compacted":
            self.compactions += 1
        return report

    def _summarizer(self) -> Summarizer:
        if self.summarizer is None:
            runtime = self.runtime
            wanted = self.settings.summarizer.model
            if wanted and wanted != self.agent.model_spec:
                from recursa.agent.runtime.registry import open_runtime

                runtime = open_runtime(wanted, options=self.settings.runtime.options())
                self._own_summary_runtime = runtime
            # The same recursive summarizer as chat, with the composition's wording.
            self.summarizer = ModelSummarizer(runtime, self.settings.summarizer, self.templates)
        return self.summarizer

    # -- chunks and the stored state ----------------------------------------------------------

    def _progress(
        self,
        event: Literal["text", "compacting", "step"],
        text: str = "",
        step: CompositionStep | None = None,
    ) -> CompositionChunk:
        return CompositionChunk(
            event=event,
            text=text,
            tokens=self.tokens,
            target_tokens=self.spec.target_tokens,
            compactions=self.compactions,
            step=step,
        )

    def save_spec(self, spec: CompositionSpec) -> None:
        self.spec = spec
        header = self.agent._store.get_message(self.header.id)
        self.header = self.agent._store.update_message(
            header.id, metadata={**header.metadata, _SPEC_KEY: spec.model_dump(mode="json")}
        )

    def _finish(self, reason: StopReason) -> CompositionChunk:
        self.save_spec(self.spec.model_copy(update={"stop_reason": reason}))
        return self._done(reason)

    def _done(self, reason: StopReason) -> CompositionChunk:
        result = CompositionResult(
            composition_id=self.conv.id,
            stop_reason=reason,
            tokens=self.tokens,
            target_tokens=self.spec.target_tokens,
            steps=self.index,
            new_steps=self.new_steps,
            compactions=self.compactions,
            opening=self.spec.opening,
            text=self.prior_text + "".join(self.pieces_all),
        )
        return CompositionChunk(
            event="done",
            tokens=self.tokens,
            target_tokens=self.spec.target_tokens,
            compactions=self.compactions,
            result=result,
        )


# --- validation --------------------------------------------------------------------------


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be a whole number of tokens, not {value!r}.")
    if value <= 0:
        raise InvalidInputError(f"{name} must be at least 1 token, got {value}.")
    return value


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be text, not {type(value).__name__}.")
    if "\x00" in value:
        raise InvalidInputError(f"{name} contains a NUL character (U+0000); remove it.")
    return value


def _stops(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    items = (stop,) if isinstance(stop, str) else tuple(stop)
    for s in items:
        if not isinstance(s, str) or not s:
            raise InvalidInputError(f"Stop strings must be non-empty text, got {s!r}.")
    return items


def _repetition(value: RepetitionSettings | bool | None) -> RepetitionSettings:
    if value is None or value is True:
        return RepetitionSettings()
    if value is False:
        return RepetitionSettings(enabled=False)
    if isinstance(value, RepetitionSettings):
        return value
    raise InvalidInputError(
        f"repetition must be True, False or a RepetitionSettings, not {type(value).__name__}."
    )


def _check_budget(
    runtime: Runtime, settings: Settings, templates: Templates, spec: CompositionSpec
) -> None:
    """Refuse a step or an opening that can never fit the prompt budget."""
    budget = compute_budget(runtime.context_window, settings.budget)
    if spec.step_tokens > budget:
        raise BudgetError(
            f"A step of {spec.step_tokens} tokens is larger than the prompt budget of {budget} "
            f"tokens, so it could never stay in the verbatim tail; use a step of at most "
            f"{budget // 4} tokens (or raise max_prompt_tokens)."
        )
    system: ChatMessage = {
        "role": "system",
        "content": templates.render("system", system_prompt=spec.instructions, summary=None),
    }
    system_tokens = runtime.count_tokens([system])
    flex = flexible_budget(budget, system_tokens)
    cue: ChatMessage = {"role": "user", "content": templates.render("continue", started=True)}
    cue_tokens = runtime.count_tokens([system, cue]) - system_tokens
    summary_cap = (
        max(16, int(settings.budget.summary_share * flex)) if (settings.policy != "window") else 0
    )
    step_overhead = message_cost(runtime, "assistant", "") + 2  # role markers, separator
    room = flex - cue_tokens - summary_cap - step_overhead
    if room < 1:
        raise BudgetError(
            f"The instructions use {system_tokens} of the {budget}-token prompt budget, leaving "
            "no room for the text; shorten the instructions or raise max_prompt_tokens."
        )
    if spec.step_tokens > room:
        raise BudgetError(
            f"A step of {spec.step_tokens} tokens cannot fit the verbatim tail: the prompt "
            f"budget is {budget} tokens, of which the instructions use {system_tokens}, the "
            f"summary up to {summary_cap} and the cue {cue_tokens}. Use a step of at most "
            f"{room} tokens (or raise max_prompt_tokens)."
        )
    if spec.opening:
        opening_tokens = message_cost(runtime, "user", spec.opening)
        if opening_tokens > flex - cue_tokens:
            raise BudgetError(
                f"The opening text is {opening_tokens} tokens, but the prompt budget leaves "
                f"{flex - cue_tokens} for it; shorten it by at least "
                f"{opening_tokens - flex + cue_tokens} tokens (or raise max_prompt_tokens)."
            )


def _title(opening: str, preset: str | None) -> str:
    head = opening.split()
    if head:
        return " ".join(head[:8]) + ("…" if len(head) > 8 else "")
    return f"Composition ({preset})" if preset else "Composition"
