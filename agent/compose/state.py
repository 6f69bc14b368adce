"""A composition's stored state: where its parameters and steps live, and reading them back.

Stored layout of a composition conversation: seq 1 is a system message holding
the instructions, with the composition's parameters in its metadata
(`metadata[SPEC_KEY]`); then the opening as a user message (when there is one,
`metadata[OPENING_KEY]`); then one assistant message per step
(`metadata[STEP_KEY]` is its index). Each step's text includes the separator
that joins it to the text before it, so the stored steps concatenate exactly to
the text that was emitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError
from recursa.agent.compose.models import CompositionSpec
from recursa.agent.errors import InvalidInputError
from recursa.agent.recall import usable
from recursa.memory.records import ConversationRecord, MessageRecord

if TYPE_CHECKING:
    from recursa.memory.store import Store

__all__ = [
    "OPENING_KEY",
    "SPEC_KEY",
    "STEP_KEY",
    "StoredProgress",
    "composition_text",
    "load_spec",
    "read_progress",
    "save_spec",
    "stored_spec",
]

SPEC_KEY = "composition"
STEP_KEY = "composition_step"
OPENING_KEY = "composition_opening"


def stored_spec(store: Store, composition_id: int) -> CompositionSpec | None:
    """The composition's stored parameters, or None when its header is missing or unreadable."""
    first = store.messages(composition_id, limit=1)
    if not first or SPEC_KEY not in first[0].metadata:
        return None
    try:
        return CompositionSpec.model_validate(first[0].metadata[SPEC_KEY])
    except ValidationError:
        return None


def load_spec(
    store: Store, composition_id: int
) -> tuple[ConversationRecord, MessageRecord, CompositionSpec]:
    """The conversation, header message and parameters of a composition to resume.

    InvalidInputError (naming what to do) when the conversation is not a
    composition or its parameters are missing or unreadable.
    """
    conv = store.get_conversation(composition_id)
    if conv.kind != "composition":
        raise InvalidInputError(
            f"Conversation {composition_id} is a {conv.kind}, not a composition; "
            "list compositions with their kind to find the right id."
        )
    first = store.messages(conv.id, limit=1)
    header = first[0] if first else None
    if header is None or SPEC_KEY not in header.metadata:
        raise InvalidInputError(
            f"Composition {composition_id} has no stored parameters (its first message); "
            "it cannot be resumed. Start a new one."
        )
    try:
        spec = CompositionSpec.model_validate(header.metadata[SPEC_KEY])
    except ValidationError as exc:
        raise InvalidInputError(
            f"Composition {composition_id} has unreadable stored parameters ({exc}); "
            "start a new one."
        ) from exc
    return conv, header, spec


def save_spec(store: Store, header_id: int, spec: CompositionSpec) -> MessageRecord:
    """Store new parameters in the header message (its other metadata kept); return it."""
    header = store.get_message(header_id)
    return store.update_message(
        header.id, metadata={**header.metadata, SPEC_KEY: spec.model_dump(mode="json")}
    )


@dataclass(frozen=True)
class StoredProgress:
    """How far a stored composition got: what a resumed run starts from."""

    opening: str
    steps: list[MessageRecord]
    tokens: int
    index: int
    last_seq: int
    compactions: int

    @property
    def text(self) -> str:
        """The generated text so far (every stored step)."""
        return "".join(r.content for r in self.steps)

    @property
    def last_finish(self) -> str | None:
        return str(self.steps[-1].metadata.get("finish_reason")) if self.steps else None


def read_progress(store: Store, composition_id: int) -> StoredProgress:
    """The opening, the usable steps and the counters of a stored composition."""
    records = [r for r in store.messages(composition_id) if usable(r)]
    steps = [r for r in records if r.role == "assistant" and STEP_KEY in r.metadata]
    return StoredProgress(
        opening=next((r.content for r in records if r.metadata.get(OPENING_KEY)), ""),
        steps=steps,
        tokens=sum(int(r.metadata.get("tokens", 0)) for r in steps),
        index=max((int(r.metadata[STEP_KEY]) for r in steps), default=0),
        last_seq=store.messages(composition_id, newest_first=True, limit=1)[0].seq,
        compactions=len(store.summary_chain(composition_id)),
    )


def composition_text(store: Store, composition_id: int) -> str:
    """The stored document: the opening followed by every stored step."""
    records = [r for r in store.messages(composition_id) if usable(r)]
    return "".join(
        r.content
        for r in records
        if r.metadata.get(OPENING_KEY) or (r.role == "assistant" and STEP_KEY in r.metadata)
    )
