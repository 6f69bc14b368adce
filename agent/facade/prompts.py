"""The Agent's prompt methods: the next turn's plan, stored traces, past prompts re-rendered.

`PromptsMixin` is one part of `recursa.agent.agent.Agent`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent.boundary import PromptTrace
from recursa.agent.checks import check_id, check_text
from recursa.agent.facade.base import AgentBase
from recursa.agent.planning.plan import NewText
from recursa.agent.planning.prompt import plan_prompt
from recursa.agent.traces import reconstruct_prompt

if TYPE_CHECKING:
    from recursa.agent.planning.plan import PromptPlan
    from recursa.agent.runtime.protocol import ChatMessage

__all__ = ["PromptsMixin"]


class PromptsMixin(AgentBase):
    """What a prompt holds: before a turn (a preview) and after it (its trace)."""

    # prompts and traces -------------------------------------------------------------------

    def preview_prompt(self, conversation_id: int, text: str) -> PromptPlan:
        """The PromptPlan the next turn would use for `text`; stores and generates nothing.

        `text` may be empty: the plan is then the prompt as it stands, with an
        empty new message (a budget bar shows it while nothing is typed).
        `send` still refuses empty text.
        """
        conversation_id = check_id(conversation_id, "conversation_id")
        text = check_text(text, allow_blank=True)
        conv = self._store.get_conversation(conversation_id)
        settings = self.settings.merged(conv.settings)
        return plan_prompt(
            self._store,
            conv,
            settings,
            self.runtime,
            NewText(text),
            semantic=self._vectors_for(settings),
        )

    def trace(self, message_id: int) -> PromptTrace:
        """The prompt trace of a reply (by the reply's message id)."""
        message_id = check_id(message_id, "message_id")
        return PromptTrace.from_record(self._store.get_trace(message_id))

    def traces(self, conversation_id: int) -> list[PromptTrace]:
        """Every reply's trace in a conversation, oldest first."""
        conversation_id = check_id(conversation_id, "conversation_id")
        return [PromptTrace.from_record(t) for t in self._store.traces(conversation_id)]

    def reconstruct_prompt(self, message_id: int) -> list[ChatMessage]:
        """Re-render a past reply's prompt from the stored records its trace names.

        Uses the summary, window, recalled and user messages by id, the system
        prompt and template version recorded in the plan. Equal to
        `trace(message_id).messages` unless a message was edited since.
        """
        message_id = check_id(message_id, "message_id")
        return reconstruct_prompt(
            self._store,
            self.trace(message_id),
            load_runtime=self.load_model,
            default_excerpt_tokens=self.settings.recall.max_excerpt_tokens,
        )
