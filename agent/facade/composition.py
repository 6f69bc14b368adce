"""The Agent's long-form composition methods: start, resume, read a composition.

`CompositionMixin` is one part of `recursa.agent.agent.Agent`; the writing
itself is `recursa.agent.compose`, given the store, the settings, the model and
the caller's summarizer through `ComposeDeps`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Unpack

from recursa.agent.checks import check_id
from recursa.agent.compose import ComposeDeps, ComposeOptions, CompositionStream
from recursa.agent.compose import compose as start_composition
from recursa.agent.compose import resume_composition as continue_composition
from recursa.agent.compose.state import composition_text, stored_spec
from recursa.agent.errors import InvalidInputError
from recursa.agent.facade.base import AgentBase
from recursa.agent.summarize import ModelSummarizer, Summarizer

if TYPE_CHECKING:
    from recursa.agent.compose.models import CompositionSpec
    from recursa.agent.runtime.protocol import CancelToken

__all__ = ["CompositionMixin"]


class CompositionMixin(AgentBase):
    """Compositions: texts grown past the context window, stored as conversations."""

    # long-form composition ------------------------------------------------------------------

    def compose(
        self,
        prompt: str | None = None,
        # mypy sees recursa.* imports as Any (the package-dir layout), so not the TypedDict.
        **options: Unpack[ComposeOptions],  # type: ignore[misc]
    ) -> CompositionStream:
        """Grow a text past the context window, step by step, from its own summary.

        Each step's prompt is the instructions, the summary of the text before
        the verbatim tail, and the tail, under the same budget as chat. The
        composition is stored as a conversation of kind "composition", one
        message per step, and streams `CompositionChunk`s whose last one carries
        the result and its stop reason. The options (`target_tokens` is required)
        are `recursa.agent.compose.ComposeOptions`.
        """
        return start_composition(self._compose_deps(), prompt, **options)

    def resume_composition(
        self,
        composition_id: int,
        *,
        target_tokens: int | None = None,
        cancel: CancelToken | None = None,
    ) -> CompositionStream:
        """Continue a stored composition from its last stored step."""
        composition_id = check_id(composition_id, "composition_id")
        return continue_composition(
            self._compose_deps(), composition_id, target_tokens=target_tokens, cancel=cancel
        )

    def composition(self, composition_id: int) -> CompositionSpec | None:
        """A composition's stored parameters, its last stop reason included.

        None when they are missing or unreadable (`resume_composition` then says
        why). NotFoundError for an unknown id; InvalidInputError when the
        conversation is not a composition.
        """
        composition_id = check_id(composition_id, "composition_id")
        conv = self._store.get_conversation(composition_id)
        if conv.kind != "composition":
            raise InvalidInputError(
                f"Conversation {composition_id} is a {conv.kind}, not a composition."
            )
        return stored_spec(self._store, composition_id)

    def composition_text(self, composition_id: int) -> str:
        """A stored composition's document: its opening followed by every stored step."""
        composition_id = check_id(composition_id, "composition_id")
        return composition_text(self._store, composition_id)

    def _compose_deps(self) -> ComposeDeps:
        return ComposeDeps(
            store=self._store,
            settings=self.settings,
            load_runtime=self.load_model,
            summarizer=self._injected_summarizer(),
        )

    def _injected_summarizer(self) -> Summarizer | None:
        # A summarizer given by the caller (a test's extractive one, say) serves
        # compositions too; the chat ModelSummarizer does not, because its wording
        # is for dialogue: composition builds its own with prose wording.
        if self._summarizer is None or isinstance(self._summarizer, ModelSummarizer):
            return None
        return self._summarizer
