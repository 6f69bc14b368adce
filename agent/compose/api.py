"""Starting and resuming compositions: the public entry points, with their input checks.

`compose(deps, prompt, target_tokens=...)` validates everything before anything
is stored, creates the composition (its header and opening, all or nothing) and
returns a stream that runs the step loop; `resume_composition` continues one
from its last stored step. `Agent.compose` and `Agent.resume_composition` call
these with the agent's store, settings and model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Unpack

from recursa.agent.checks import check_text
from recursa.agent.compose.models import (
    DEFAULT_STEP_TOKENS,
    FINAL_REASONS,
    ComposeOptions,
    CompositionSpec,
    CompositionStream,
)
from recursa.agent.compose.presets import COMPOSE_TEMPLATES, Preset, get_preset
from recursa.agent.compose.repetition import RepetitionGuard, RepetitionSettings
from recursa.agent.compose.state import OPENING_KEY, SPEC_KEY, load_spec, read_progress
from recursa.agent.compose.steps import StepLoop
from recursa.agent.errors import BudgetError, InvalidInputError
from recursa.agent.planning.plan import compute_budget, flexible_budget, message_cost, summary_cap
from recursa.agent.runtime.protocol import CancelToken, ChatMessage, Runtime
from recursa.agent.settings import Settings
from recursa.agent.summarize import Summarizer
from recursa.agent.templates import Templates
from recursa.memory.records import NewMessage

if TYPE_CHECKING:
    from recursa.memory.store import Store

__all__ = ["MAX_SEED", "MAX_TARGET_TOKENS", "ComposeDeps", "compose", "resume_composition"]

# Past this a composition would run for weeks on a CPU: a larger number is a mistake.
MAX_TARGET_TOKENS = 10_000_000
MAX_SEED = 2**63 - 1 - MAX_TARGET_TOKENS


@dataclass(frozen=True)
class ComposeDeps:
    """What a composition runs on: the store, the settings, the model and a summarizer.

    `load_runtime` loads the model on first use; `summarizer` None builds the
    model summarizer with the composition's prose wording when one is needed.
    """

    store: Store
    settings: Settings
    load_runtime: Callable[[], Runtime]
    summarizer: Summarizer | None = None


def compose(
    deps: ComposeDeps,
    prompt: str | None = None,
    # mypy sees recursa.* imports as Any (the package-dir layout), so not the TypedDict.
    **options: Unpack[ComposeOptions],  # type: ignore[misc]
) -> CompositionStream:
    """Start a composition and return its stream of chunks (see `ComposeOptions`).

    `prompt` is the opening of the text (None or "" with no preset: an empty
    start); a preset's opening and instructions give way to `prompt` and
    `instructions`. Input is validated before anything is stored:
    InvalidInputError for bad values or an unknown preset, BudgetError when a
    step cannot fit.
    """
    settings = deps.settings
    preset = options.get("preset")
    instructions = options.get("instructions")
    params = options.get("params")
    # Validate first, write second: every value is checked (and the budget below) before
    # the composition is created, so a bad one stores nothing.
    found: Preset | None = get_preset(preset) if preset is not None else None
    target_tokens = _positive("target_tokens", options["target_tokens"])
    step_tokens = _positive("step_tokens", options.get("step_tokens", DEFAULT_STEP_TOKENS))
    stops = _stops(options.get("stop"))
    seed = _seed(options.get("seed"))
    if prompt is not None:
        prompt = check_text(prompt, name="The opening text", allow_blank=True)
    opening = prompt if prompt and prompt.strip() else (found.opening if found else "")
    if instructions is not None:
        instructions = check_text(instructions, name="The instruction text", allow_blank=True)
        if not instructions.strip():
            raise InvalidInputError("The instructions are empty; leave them out for the default.")
    title = options.get("title")
    if title is not None:
        title = check_text(title, name="The title", allow_blank=True)
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
    guard_settings = _repetition(options.get("repetition"))
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
    runtime = deps.load_runtime()  # loads the model: only once the input is known to be good
    _check_budget(runtime, settings, templates, spec)

    store = deps.store
    # The composition, its header and its opening are stored in one transaction.
    opening_messages = (
        [NewMessage("user", opening, metadata={OPENING_KEY: True})] if opening else []
    )
    conv = store.create_conversation(
        title=title or _title(opening, preset),
        system_prompt=final_instructions,
        model=runtime.name,
        kind="composition",
        messages=[
            NewMessage(
                "system", final_instructions, metadata={SPEC_KEY: spec.model_dump(mode="json")}
            ),
            *opening_messages,
        ],
    )
    header = store.messages(conv.id, limit=1)[0]
    token = options.get("cancel") or CancelToken()
    run = StepLoop(
        store=store,
        conv=conv,
        header=header,
        spec=spec,
        settings=settings.merged(conv.settings),
        runtime=runtime,
        templates=templates,
        summarizer=deps.summarizer,
        cancel=token,
        guard=RepetitionGuard(guard_settings),
    )
    run.guard.remember(opening)
    run.last_seq = store.messages(conv.id, newest_first=True, limit=1)[0].seq
    run.doc_tail = opening[-1:]
    return CompositionStream(conv.id, run.steps(), token)


def resume_composition(
    deps: ComposeDeps,
    composition_id: int,
    *,
    target_tokens: int | None = None,
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
    store = deps.store
    conv, header, spec = load_spec(store, composition_id)
    if target_tokens is not None:
        spec = spec.model_copy(update={"target_tokens": _positive("target_tokens", target_tokens)})
    progress = read_progress(store, conv.id)
    runtime = deps.load_runtime()
    guard = RepetitionGuard(RepetitionSettings.from_dict(spec.repetition))
    guard.remember(progress.opening + progress.text)
    if progress.steps:
        guard.level = int(progress.steps[-1].metadata.get("control_level", 0))
        guard.calm = int(progress.steps[-1].metadata.get("calm", 0))
    token = cancel or CancelToken()
    run = StepLoop(
        store=store,
        conv=conv,
        header=header,
        spec=spec,
        settings=deps.settings.merged(conv.settings),
        runtime=runtime,
        templates=Templates.load(spec.templates),
        summarizer=deps.summarizer,
        cancel=token,
        guard=guard,
    )
    run.tokens = progress.tokens
    run.index = progress.index
    run.prior_text = progress.text
    run.last_seq = progress.last_seq
    run.doc_tail = (progress.opening + progress.text)[-1:]
    run.last_finish = progress.last_finish
    run.compactions = progress.compactions
    ended = spec.stop_reason in FINAL_REASONS and not (
        target_tokens is not None and spec.target_tokens > progress.tokens
    )
    if ended:
        assert spec.stop_reason is not None
        return CompositionStream(conv.id, run.finished(spec.stop_reason), token)
    if spec.stop_reason is not None or target_tokens is not None:
        run.save_spec(spec.model_copy(update={"stop_reason": None}))
    return CompositionStream(conv.id, run.steps(), token)


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be a whole number of tokens, not {value!r}.")
    if value <= 0:
        raise InvalidInputError(f"{name} must be at least 1 token, got {value}.")
    if value > MAX_TARGET_TOKENS:
        raise InvalidInputError(f"{name} must be at most {MAX_TARGET_TOKENS} tokens, got {value}.")
    return value


def _seed(seed: object) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(f"seed must be an integer, not {seed!r}.")
    # Each step samples with seed + its index, which must stay a valid 64-bit seed.
    if not 0 <= seed <= MAX_SEED:
        raise InvalidInputError(f"seed must be from 0 to {MAX_SEED}, got {seed}.")
    return seed


def _stops(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    items = (stop,) if isinstance(stop, str) else tuple(stop)
    for s in items:
        if not isinstance(s, str) or not s:
            raise InvalidInputError(f"Stop strings must be non-empty text, got {s!r}.")
        check_text(s, name=f"The stop string {s!r}")
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
    cap = summary_cap(flex, settings.budget) if settings.policy != "window" else 0
    step_overhead = message_cost(runtime, "assistant", "") + 2  # role markers, separator
    room = flex - cue_tokens - cap - step_overhead
    if room < 1:
        raise BudgetError(
            f"The instructions use {system_tokens} of the {budget}-token prompt budget, leaving "
            "no room for the text; shorten the instructions or raise max_prompt_tokens."
        )
    if spec.step_tokens > room:
        raise BudgetError(
            f"A step of {spec.step_tokens} tokens cannot fit the verbatim tail: the prompt "
            f"budget is {budget} tokens, of which the instructions use {system_tokens}, the "
            f"summary up to {cap} and the cue {cue_tokens}. Use a step of at most "
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
