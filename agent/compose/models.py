"""A composition's typed boundary: options, stored parameters, steps, chunks, result, stream."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from typing import Any, Literal, Required, TypedDict

from pydantic import BaseModel, ConfigDict, Field
from recursa.agent.compose.presets import COMPOSE_TEMPLATES
from recursa.agent.compose.repetition import RepetitionSettings
from recursa.agent.errors import ModelError
from recursa.agent.runtime.protocol import CancelToken, GenerationParams

__all__ = [
    "DEFAULT_STEP_TOKENS",
    "FINAL_REASONS",
    "ComposeOptions",
    "CompositionChunk",
    "CompositionFailedError",
    "CompositionResult",
    "CompositionSpec",
    "CompositionStep",
    "CompositionStream",
    "StopReason",
]

DEFAULT_STEP_TOKENS = 128
StopReason = Literal["target", "stop_string", "eos", "repetition", "cancelled"]
# Stop reasons after which `resume_composition` has nothing more to write (unless the
# target is raised).
FINAL_REASONS: frozenset[str] = frozenset({"target", "stop_string", "eos", "repetition"})


class CompositionFailedError(ModelError):
    """The model failed mid-composition; every finished step is stored, resume to go on."""

    def __init__(self, message: str, composition_id: int) -> None:
        super().__init__(message)
        self.composition_id = composition_id


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


class ComposeOptions(TypedDict, total=False):
    """What a composition may be asked for (`Agent.compose(prompt, **options)`).

    - target_tokens: tokens of new text to write (required).
    - step_tokens: the most tokens one step generates (default 128).
    - instructions: the system text (default: the preset's, or the shipped default).
    - stop: stop string(s); the text ends before one is generated.
    - seed: sampling seed (each step uses seed + its index).
    - preset: a shipped starting point (opening, instructions, sampler settings).
    - params: generation parameters instead of the settings' (max_new_tokens,
      seed and stop are set per step).
    - repetition: tune, or with False turn off, the loop guard.
    - title: the stored conversation's title.
    - cancel: a token to stop the composition from another thread.
    """

    target_tokens: Required[int]
    step_tokens: int
    instructions: str | None
    stop: str | Sequence[str] | None
    seed: int | None
    preset: str | None
    params: GenerationParams | None
    repetition: RepetitionSettings | bool | None
    title: str | None
    cancel: CancelToken | None
