"""recursa.agent.compose: long-form writing that grows past the context window.

A composition is a conversation of kind "composition" written step by step on
the chat turn's own machinery (planning, compaction, commit). See `run.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent._lazy import lazy_exports

_EXPORTS = {
    name: "recursa.agent.compose.run"
    for name in (
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
    )
}
_EXPORTS.update(
    {
        "RepetitionSettings": "recursa.agent.compose.repetition",
        "Preset": "recursa.agent.compose.presets",
        "get_preset": "recursa.agent.compose.presets",
    }
)
__all__ = [
    "CompositionChunk",
    "CompositionFailedError",
    "CompositionResult",
    "CompositionSpec",
    "CompositionStep",
    "CompositionStream",
    "DEFAULT_STEP_TOKENS",
    "Preset",
    "RepetitionSettings",
    "StopReason",
    "compose",
    "composition_text",
    "get_preset",
    "resume_composition",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from recursa.agent.compose.presets import Preset, get_preset
    from recursa.agent.compose.repetition import RepetitionSettings
    from recursa.agent.compose.run import (
        DEFAULT_STEP_TOKENS,
        CompositionChunk,
        CompositionFailedError,
        CompositionResult,
        CompositionSpec,
        CompositionStep,
        CompositionStream,
        StopReason,
        compose,
        composition_text,
        resume_composition,
    )
