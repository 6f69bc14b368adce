"""One dialogue turn as a generator: commit the message, plan, compact, stream, commit the reply.

`run_turn` is the whole data flow of a turn. Its first (placeholder) chunk is
yielded once the user message is committed, so `Agent.stream` can surface
input errors before returning; every later chunk is text or a status event,
and the last one carries the stored Reply with its prompt trace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from recursa.agent.boundary import CompactionReport, PromptTrace, Reply, ReplyStatus, StreamChunk
from recursa.agent.checks import check_text
from recursa.agent.compaction.fold import SummarizerFor, run_compaction
from recursa.agent.compaction.triggers import after_reply_job, before_reply_job
from recursa.agent.errors import (
    BudgetError,
    ContextOverflowError,
    InvalidInputError,
    ModelError,
    RecursaError,
)
from recursa.agent.planning.plan import NewText, PromptPlan, message_cost
from recursa.agent.planning.prompt import check_fits, fit_message, plan_prompt
from recursa.agent.runtime.protocol import (
    CancelToken,
    GenerationParams,
    Runtime,
    Usage,
    prefix_cache_key,
)
from recursa.agent.settings import Settings
from recursa.agent.traces import record_reply
from recursa.agent.turn_lease import Heartbeat, is_live, new_lease
from recursa.memory.records import SUPERSEDED_KEY, ConversationRecord, MessageRecord

if TYPE_CHECKING:
    from recursa.agent.recall.vectors import VectorIndex
    from recursa.memory.store import Store

log = logging.getLogger(__name__)
# The vector index semantic recall uses under a conversation's settings (None: off).
VectorsFor = Callable[[Settings], "VectorIndex | None"]


class Background(Protocol):
    """Where a turn queues its compaction, and asks whether one is under way."""

    def busy(self, conversation_id: int) -> bool: ...

    def compact_later(self, conversation_id: int) -> None: ...


__all__ = ["TurnFailedError", "prepare_regenerate", "run_turn", "unanswered_message"]


class TurnFailedError(ModelError):
    """The model failed mid-turn; the user message and an error reply (`reply`) are stored."""

    def __init__(self, message: str, reply: Reply) -> None:
        super().__init__(message)
        self.reply = reply


@dataclass
class _TurnState:
    """What a turn has gathered by the time its reply is committed."""

    conv: ConversationRecord
    runtime: Runtime
    user: MessageRecord
    plan: PromptPlan
    params: GenerationParams
    t_start: float
    t_gen: float
    timings: dict[str, Any]
    notes: list[str]
    compactions: list[CompactionReport]
    pieces: list[str] = field(default_factory=list)
    status: ReplyStatus = "complete"
    error: str | None = None
    usage: Usage | None = None


def run_turn(
    store: Store,
    agent_settings: Settings,
    load_runtime: Callable[[], Runtime],
    summarizer_for: SummarizerFor,
    conversation_id: int,
    text: str | None,
    *,
    params: GenerationParams | None,
    cancel: CancelToken,
    vectors_for: VectorsFor | None = None,
    background: Background | None = None,
    answer_stored: bool = False,
) -> Generator[StreamChunk, None, None]:
    """One turn (`text` None: answer the last user message again).

    `answer_stored`: answer the last user message, stored earlier without a
    reply (`unanswered_message`); `text` is then ignored.

    `vectors_for` gives the vector index semantic recall uses under a
    conversation's settings (None: full-text recall only); the turn's two
    messages are embedded after the reply is committed, never before its first
    token.

    `background` is where compaction goes when `summarizer.background` is on:
    the reply is stored first and the fold queued after it; a turn that starts
    while one is queued or running plans against the previous summary, within
    budget, instead of waiting for it (or compacting a second time).

    The model is loaded only after the conversation is found, so an unknown id
    fails fast without loading anything.
    """
    t_start = time.perf_counter()
    conv = store.get_conversation(conversation_id)
    settings = agent_settings.merged(conv.settings)
    runtime = load_runtime()
    notes: list[str] = []
    compactions: list[CompactionReport] = []
    heartbeat: Heartbeat | None = None
    if answer_stored:
        # A message stored earlier (typed while the model loaded) and not answered yet.
        user = unanswered_message(store, conversation_id)
        check_fits(conv, settings, runtime, user.content)
        lease = new_lease()
        store.renew_turn_lease(user.id, lease, take_over=True)
        heartbeat = Heartbeat(store, user.id, lease).start()
    elif text is not None:
        text = check_text(text)
        if settings.budget.oversized_message == "refuse":
            # Refuse an oversized message before storing anything.
            check_fits(conv, settings, runtime, text)
        note = mark_unanswered(store, conversation_id)
        if note is not None:
            notes.append(note)
        # Stored with its lease in one transaction: while this turn runs, no other
        # process takes the message for one whose reply was lost.
        lease = new_lease()
        user = store.append_message(conversation_id, "user", text, lease=lease)
        heartbeat = Heartbeat(store, user.id, lease).start()
    else:
        user = prepare_regenerate(store, conversation_id)
        notes.append("regenerated reply")
    try:
        yield from _answer(
            store,
            conv,
            settings,
            runtime,
            user,
            summarizer_for,
            params=params,
            cancel=cancel,
            vectors_for=vectors_for,
            background=background,
            t_start=t_start,
            notes=notes,
            compactions=compactions,
        )
    finally:
        if heartbeat is not None:
            heartbeat.stop()


def _answer(
    store: Store,
    conv: ConversationRecord,
    settings: Settings,
    runtime: Runtime,
    user: MessageRecord,
    summarizer_for: SummarizerFor,
    *,
    params: GenerationParams | None,
    cancel: CancelToken,
    vectors_for: VectorsFor | None,
    background: Background | None,
    t_start: float,
    notes: list[str],
    compactions: list[CompactionReport],
) -> Generator[StreamChunk, None, None]:
    """The turn once its user message is stored: plan, compact, stream, commit the reply."""
    yield StreamChunk(event="text")  # consumed by stream(): the user message is committed

    timings: dict[str, Any] = {}
    t0 = time.perf_counter()
    vectors = vectors_for(settings) if vectors_for is not None else None

    def plan_turn() -> Generator[StreamChunk, None, PromptPlan]:
        # The turn's plan, made again under the window a server states when it refuses.
        return _plan(
            store,
            conv,
            settings,
            runtime,
            user,
            vectors,
            summarizer_for,
            compactions,
            notes,
            background,
        )

    plan = yield from plan_turn()
    timings["plan_s"] = round(time.perf_counter() - t0, 6)
    if plan.dropped_ids:
        notes.append(f"{len(plan.dropped_ids)} window messages did not fit the budget")

    turn = _TurnState(
        conv=conv,
        runtime=runtime,
        user=user,
        plan=plan,
        params=_fit_params(params or settings.generation.params(), runtime, plan, settings),
        t_start=t_start,
        t_gen=time.perf_counter(),
        timings=timings,
        notes=notes,
        compactions=compactions,
    )
    failure: BaseException | None = None
    retried = False
    while True:
        try:
            tstream = runtime.stream(
                turn.plan.messages, turn.params, cache_key=prefix_cache_key(conv.id), cancel=cancel
            )
            try:
                for piece in tstream:
                    turn.pieces.append(piece)
                    yield StreamChunk(text=piece)
                turn.usage = tstream.usage
                usage = turn.usage
                if cancel.cancelled or (usage is not None and usage.finish_reason == "cancelled"):
                    turn.status = "interrupted"
            finally:
                tstream.close()
        except GeneratorExit:
            # The consumer stopped reading: keep what was generated, marked interrupted.
            turn.status = "interrupted"
            notes.append("the reader closed the stream before the reply ended")
            _commit(store, turn)
            return
        except ContextOverflowError as exc:
            # The server refused the prompt as too long and said (or implied) its
            # window: plan again under it, compacting if needed, and try once more.
            if retried or turn.pieces or runtime.context_window >= turn.plan.context_window:
                failure = exc
                turn.status, turn.error = "error", str(exc)
                notes.append(f"the server refused the prompt as too long: {exc}")
            else:
                retried = True
                refused = turn.plan.total_tokens
                try:
                    turn.plan = yield from plan_turn()
                except BudgetError as budget:
                    failure = budget
                    turn.status = "error"
                    turn.error = (
                        f"{exc} {budget.args[0]} To send its beginning anyway, set "
                        "budget.oversized_message to 'cut' (RECURSA_BUDGET__OVERSIZED_MESSAGE=cut)."
                    )
                    notes.append(f"the server refused the prompt and it cannot fit: {budget}")
                else:
                    turn.params = _fit_params(turn.params, runtime, turn.plan, settings)
                    notes.append(
                        f"the server refused a {refused}-token prompt as too long; re-planned "
                        f"under its context window of {runtime.context_window} tokens "
                        f"({turn.plan.total_tokens} tokens) and retried"
                    )
                    continue
        except Exception as exc:  # recorded as an error reply, then re-raised typed below
            turn.status = "error"
            turn.error = f"{type(exc).__name__}: {exc}"
            failure = exc
            notes.append(f"generation failed: {turn.error}")
        except BaseException as exc:
            # KeyboardInterrupt (Ctrl-C while the model generates) or SystemExit: the
            # caller is leaving, but what was generated is kept, like a cancel.
            turn.status = "interrupted"
            notes.append(f"interrupted by {type(exc).__name__} before the reply ended")
            _commit(store, turn)
            raise
        break

    timings["generate_s"] = round(time.perf_counter() - turn.t_gen, 6)
    in_background = background is not None and settings.summarizer.background
    if turn.status != "error" and settings.policy != "window" and in_background:
        assert background is not None
        reply = _commit(store, turn)
        # After the commit: the turn's vectors, the fold and the prefill of the prompt
        # after it overlap the user's reading; the reply never waits for them (the first
        # vectors of a session load the embedding model, about a second).
        background.compact_later(conv.id)
        yield StreamChunk(event="done", reply=reply)
        return
    if turn.status != "error" and settings.policy != "window":
        # Fold old turns now, so the next turn's time to first token does not pay for it.
        t_after = time.perf_counter()
        reply_text = "".join(turn.pieces)
        pending = message_cost(runtime, "assistant", reply_text) if turn.pieces else 0
        try:
            job = after_reply_job(store, conv, settings, runtime, pending_tokens=pending)
            report = None
            if job is not None:
                yield StreamChunk(event="compacting")
                report = run_compaction(store, job, summarizer_for, when="after_reply")
        except GeneratorExit:
            # Closed after the text ended: keep the reply; compaction can wait.
            _commit(store, turn)
            return
        except BaseException as exc:
            # Interrupted (or failed) after the text ended: keep the reply as it is;
            # the next turn compacts instead.
            notes.append(f"compaction after the reply stopped: {type(exc).__name__}")
            log.warning("Compaction after a reply in conversation %s stopped: %r", conv.id, exc)
            _commit(store, turn)
            raise
        if report is not None:
            compactions.append(report)
            if report.status == "failed":
                notes.append(
                    f"compaction failed, the next turn uses the plain window: {report.error}"
                )
        timings["compaction_after_s"] = round(time.perf_counter() - t_after, 6)
    reply = _commit(store, turn)
    if vectors is not None:
        _embed_turn(store, vectors, [user.id, reply.message_id])
    if isinstance(failure, ContextOverflowError | BudgetError):
        # Already one line naming the window and the setting to change.
        raise TurnFailedError(f"{turn.error} The message was kept.", reply) from failure
    if failure is not None:
        raise TurnFailedError(
            f"The model failed while replying ({turn.error}). The message was kept and the "
            "failure stored; send again to retry.",
            reply,
        ) from failure
    yield StreamChunk(event="done", reply=reply)


def _plan(
    store: Store,
    conv: ConversationRecord,
    settings: Settings,
    runtime: Runtime,
    user: MessageRecord,
    vectors: VectorIndex | None,
    summarizer_for: SummarizerFor,
    compactions: list[CompactionReport],
    notes: list[str],
    background: Background | None = None,
) -> Generator[StreamChunk, None, PromptPlan]:
    """The turn's prompt plan, compacting first when the window cannot fit.

    When a compaction of this conversation is already queued or running in
    `background`, it does not wait for it: the plan leaves out what does not fit
    (those messages stay stored) and is within budget as it is.
    """
    content = user.content
    if settings.budget.oversized_message == "cut":
        content, cut = fit_message(conv, settings, runtime, content)
        if cut is not None:
            notes.append(cut)
    new = NewText(content, user)
    plan = plan_prompt(store, conv, settings, runtime, new, semantic=vectors)
    job = before_reply_job(store, conv, settings, runtime, plan, before_seq=user.seq)
    if job is not None and background is not None and background.busy(conv.id):
        notes.append(
            "a compaction is running in the background; planned with the summary before it"
        )
        job = None
    if job is not None:
        # The window cannot fit: compact before generating, then plan again.
        yield StreamChunk(event="compacting")
        report = run_compaction(store, job, summarizer_for, when="before_reply")
        compactions.append(report)
        if report.status == "failed":
            notes.append(f"compaction failed, using the plain window: {report.error}")
        plan = plan_prompt(store, conv, settings, runtime, new, semantic=vectors)
    return plan


def _fit_params(
    params: GenerationParams, runtime: Runtime, plan: PromptPlan, settings: Settings
) -> GenerationParams:
    """`params` with max_new_tokens lowered to the room the prompt leaves in the window."""
    room = runtime.context_window - plan.total_tokens - settings.budget.safety_margin
    if params.max_new_tokens > room:
        return params.model_copy(update={"max_new_tokens": max(1, room)})
    return params


def _embed_turn(store: Store, vectors: VectorIndex, message_ids: list[int]) -> None:
    """Store the turn's vectors now; a failure only defers them (they are made on use)."""
    try:
        vectors.embed_messages(store.messages_by_ids(message_ids))
    except RecursaError as exc:
        log.warning(
            "embedding messages %s failed, deferred to their first search: %s", message_ids, exc
        )


def _commit(store: Store, turn: _TurnState) -> Reply:
    """Store the reply and its prompt trace in one transaction; return the Reply."""
    text = "".join(turn.pieces)
    timings = dict(turn.timings)
    timings.setdefault("generate_s", round(time.perf_counter() - turn.t_gen, 6))
    timings["turn_s"] = round(time.perf_counter() - turn.t_start, 6)
    message, trace_record = record_reply(
        store,
        turn.conv.id,
        text,
        status=turn.status,
        metadata={"error": turn.error} if turn.error else {},
        model=turn.runtime.name,
        plan=turn.plan,
        params=turn.params,
        usage=turn.usage,
        timings=timings,
        compactions=turn.compactions,
        notes=turn.notes,
        user_message_id=turn.user.id,
    )
    return Reply(
        conversation_id=turn.conv.id,
        message_id=message.id,
        user_message_id=turn.user.id,
        text=text,
        status=turn.status,
        error=turn.error,
        trace=PromptTrace.from_record(trace_record),
        usage=turn.usage,
    )


def unanswered_message(store: Store, conversation_id: int) -> MessageRecord:
    """The last message when it is a user message with no reply yet; InvalidInputError if not."""
    recent = store.messages(conversation_id, limit=1, newest_first=True)
    if not recent or recent[0].role != "user":
        raise InvalidInputError(
            f"Conversation {conversation_id} has no unanswered message; send one first."
        )
    return recent[0]


UNANSWERED_REPLY = (
    "(No reply: the reply to this message was never written, because the program stopped "
    "before it finished.)"
)


def mark_unanswered(store: Store, conversation_id: int) -> str | None:
    """Mark a user message left without a reply (a crash mid-reply); the trace note, or None.

    A process killed while generating leaves the user message stored and no
    reply. Before the next message is stored, an assistant message with status
    "interrupted" (the reply was cut off before its first word), metadata
    {"unanswered": true} and the text UNANSWERED_REPLY is stored after it: the
    history shows the gap, and the model sees that the earlier message went
    unanswered instead of two user turns in a row. (An "error" reply would be
    left out of prompts, which is what the mark must not be.)

    Whether the message is still being answered is read from its turn lease (see
    `recursa.agent.turn_lease`), not guessed from its age: a message whose lease
    is live (held by a running process, not expired) is left alone, however old;
    one without, however young, is marked. An imported message (dated before its
    conversation was stored) is never marked.
    """
    last = store.messages(conversation_id, limit=1, newest_first=True)
    if not last or last[0].role != "user":
        return None
    if is_live(store.turn_lease(last[0].id)):
        return None  # another thread or process is answering it right now
    if last[0].created_at < store.get_conversation(conversation_id).created_at:
        # Dated before the conversation was stored: imported, not a turn that stopped.
        return None
    reply, _ = store.add_reply(
        conversation_id, UNANSWERED_REPLY, status="interrupted", metadata={"unanswered": True}
    )
    return (
        f"message #{last[0].seq} (id {last[0].id}) had no reply (the program stopped before "
        f"it was written); marked by an interrupted reply #{reply.seq} (id {reply.id}) that says so"
    )


def prepare_regenerate(store: Store, conversation_id: int) -> MessageRecord:
    """The last user message, with the replies already given to it marked superseded."""
    recent = store.messages(conversation_id, limit=64, newest_first=True)
    user = next((r for r in recent if r.role == "user"), None)
    if user is None:
        raise InvalidInputError(
            f"Conversation {conversation_id} has no user message to answer again."
        )
    for r in recent:
        if r.seq > user.seq and r.role == "assistant" and not r.superseded:
            store.update_message(r.id, metadata={**r.metadata, SUPERSEDED_KEY: True})
    return user
