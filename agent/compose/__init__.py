"""recursa.agent.compose: long-form writing that grows past the context window.

A composition is a conversation of kind "composition" written step by step on
the chat turn's own machinery (planning, compaction triggers, reply commit):

- `api.py`: `compose` and `resume_composition`, with their input checks.
- `models.py`: the options, stored parameters, steps, chunks, result and stream.
- `steps.py`: the step loop (plan, compact, generate, store).
- `state.py`: where a composition's parameters and steps are stored, and reading them back.
- `presets.py`: shipped starting points; `repetition.py`: the loop guard.

Usually reached through `Agent.compose(prompt, target_tokens=...)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent._lazy import lazy_exports

_EXPORTS = {
    "ComposeDeps": "recursa.agent.compose.api",
    "compose": "recursa.agent.compose.api",
    "resume_composition": "recursa.agent.compose.api",
    "DEFAULT_STEP_TOKENS": "recursa.agent.compose.models",
    "ComposeOptions": "recursa.agent.compose.models",
    "CompositionChunk": "recursa.agent.compose.models",
    "CompositionFailedError": "recursa.agent.compose.models",
    "CompositionResult": "recursa.agent.compose.models",
    "CompositionSpec": "recursa.agent.compose.models",
    "CompositionStep": "recursa.agent.compose.models",
    "CompositionStream": "recursa.agent.compose.models",
    "StopReason": "recursa.agent.compose.models",
    "Preset": "recursa.agent.compose.presets",
    "get_preset": "recursa.agent.compose.presets",
    "RepetitionSettings": "recursa.agent.compose.repetition",
    "composition_text": "recursa.agent.compose.state",
    "stored_spec": "recursa.agent.compose.state",
}
__all__ = [
    "DEFAULT_STEP_TOKENS",
    "ComposeDeps",
    "ComposeOptions",
    "CompositionChunk",
    "CompositionFailedError",
    "CompositionResult",
    "CompositionSpec",
    "CompositionStep",
    "CompositionStream",
    "Preset",
    "RepetitionSettings",
    "StopReason",
    "compose",
    "composition_text",
    "get_preset",
    "resume_composition",
    "stored_spec",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from recursa.agent.compose.api import ComposeDeps, compose, resume_composition
    from recursa.agent.compose.models import (
        DEFAULT_STEP_TOKENS,
        ComposeOptions,
        CompositionChunk,
        CompositionFailedError,
        CompositionResult,
        CompositionSpec,
        CompositionStep,
        CompositionStream,
        StopReason,
    )
    from recursa.agent.compose.presets import Preset, get_preset
    from recursa.agent.compose.repetition import RepetitionSettings
    from recursa.agent.compose.state import composition_text, stored_spec
