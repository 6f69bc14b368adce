"""The composition's step loop: plan, compact, generate, store, one step at a time.

Each step runs on the chat turn's machinery: `plan_prompt` plans it (with the
composition's templates and no recall), the compaction triggers fold the oldest
steps into the summary, and `record_reply` stores the step with its prompt trace
in one transaction. What is composition's own: the cue, the step's separator,
the repetition guard and the stop reasons.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from recursa.agent.boundary import CompactionReport
from recursa.agent.compaction.fold import CompactionJob, run_compaction
from recursa.agent.compaction.triggers import after_reply_job, before_reply_job
from recursa.agent.compose.models import (
    CompositionChunk,
    CompositionFailedError,
    CompositionResult,
    CompositionSpec,
    CompositionStep,
    StopReason,
)
from recursa.agent.compose.repetition import RepetitionGuard, Verdict
from recursa.agent.compose.state import STEP_KEY, save_spec
from recursa.agent.errors import StoreError
from recursa.agent.planning.plan import NewText, PromptPlan
from recursa.agent.planning.prompt import plan_prompt
from recursa.agent.runtime.protocol import (
    CancelToken,
    GenerationParams,
    Runtime,
    Usage,
    prefix_cache_key,
)
from recursa.agent.settings import Settings
from recursa.agent.summarize import Summarizer, open_model_summarizer
from recursa.agent.templates import Templates
from recursa.agent.traces import record_reply
from recursa.memory.records import SUPERSEDED_KEY, ConversationRecord, MessageRecord

if TYPE_CHECKING:
    from recursa.memory.store import Store

__all__ = ["StepLoop"]


@dataclass
class StepLoop:
    """One run of a composition: the loop state between steps."""

    store: Store
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
                job = after_reply_job(
                    self.store,
                    self.conv,
                    self.settings,
                    self.runtime,
                    templates=self.templates,
                    unit="message",
                )
                if job is not None:
                    yield self._progress("compacting")
                    reports.append(self._run_compaction(job))
            plan = self._plan()
            job = before_reply_job(
                self.store,
                self.conv,
                self.settings,
                self.runtime,
                plan,
                templates=self.templates,
                unit="message",
            )
            if job is not None:
                # The tail cannot fit beside the summary: fold what was dropped, plan again.
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
                plan.messages,
                params,
                cache_key=prefix_cache_key(self.conv.id, "composition"),
                cancel=self.cancel,
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
        store = self.store
        text = "".join(pieces)
        if usage is not None and usage.completion_tokens:
            tokens = usage.completion_tokens
        else:
            tokens = self.runtime.count_text(text) if text.strip() else 0
        index = self.index + 1
        metadata: dict[str, Any] = {
            STEP_KEY: index,
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
        message, _ = record_reply(
            store,
            self.conv.id,
            text,
            status=status,
            metadata=metadata,
            model=self.runtime.name,
            plan=plan,
            params=params,
            usage=usage,
            timings={
                "plan_s": round(plan_s, 6),
                "generate_s": round(time.perf_counter() - t_gen, 6),
            },
            compactions=reports,
            notes=notes,
        )
        if message.seq != self.last_seq + 1:
            # Someone else appended to this composition since our last step: two writers
            # would interleave steps, so this one steps aside.
            store.update_message(message.id, metadata={**metadata, SUPERSEDED_KEY: True})
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

    # -- planning and compaction: the chat turn's own functions ------------------------------

    def _plan(self) -> PromptPlan:
        """The step's prompt: instructions (+ summary), the verbatim tail, the cue."""
        # The cue says "continue" once any text exists (the opening, a step, or a summary).
        cue = self.templates.render("continue", started=self.last_seq > self.header.seq)
        return plan_prompt(
            self.store,
            self.conv,
            self.settings,
            self.runtime,
            NewText(cue),
            templates=self.templates,
            policy="summary" if self.use_summary else "window",
            exclude_ids=(self.header.id,),
        )

    def _run_compaction(self, job: CompactionJob) -> CompactionReport:
        """Fold the job's steps into a new summary and store it, as a chat compaction does.

        A summarizer failure is reported, not raised: the step goes on with the
        plain tail, like a chat turn does.
        """
        report = run_compaction(
            self.store, job, lambda _settings, _runtime: self._summarizer(), when="before_reply"
        )
        if report.status == "compacted":
            self.compactions += 1
        return report

    def _summarizer(self) -> Summarizer:
        if self.summarizer is None:
            # The same recursive summarizer as chat, with the composition's wording.
            self.summarizer, self._own_summary_runtime = open_model_summarizer(
                self.settings,
                self.runtime,
                self.runtime.name,
                templates=self.templates,
                method="model",
            )
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
        self.header = save_spec(self.store, self.header.id, spec)

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
