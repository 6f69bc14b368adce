"""The Agent's conversation methods: create, check, list, rename, archive, delete, settings.

`ConversationsMixin` is one part of `recursa.agent.agent.Agent`; ids are
checked here and settings overrides validated before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from recursa.agent.checks import check_id, check_text
from recursa.agent.facade.base import AgentBase
from recursa.agent.planning.plan import compute_budget

if TYPE_CHECKING:
    from recursa.agent.boundary import ConversationInfo
    from recursa.agent.scoped import ScopedAgent
    from recursa.agent.settings import Settings
    from recursa.memory.records import ConversationKind

__all__ = ["ConversationsMixin"]


class ConversationsMixin(AgentBase):
    """Conversations: their lifecycle, their system prompt and their settings."""

    # conversations ------------------------------------------------------------------------

    def create_conversation(
        self,
        title: str | None = None,
        system_prompt: str | None = None,
        settings: Mapping[str, Any] | None = None,
        *,
        owner: str | None = None,
    ) -> int:
        """Create a conversation and return its id.

        `settings` override the agent's settings for this conversation (same
        names as `Agent.open`'s, e.g. {"policy": "window", "max_prompt_tokens": 512});
        they are validated now and stored with the conversation. `owner` marks it
        as one API key's (see `scoped`).
        """
        from recursa.agent.settings import nest_overrides

        overrides = nest_overrides(settings or {})
        self.settings.merged(overrides)  # validate before anything is written
        record = self._store.create_conversation(
            title=title,
            system_prompt=system_prompt,
            model=self.model_spec,
            settings=overrides,
            owner=owner,
        )
        return record.id

    def scoped(self, owner: str | None, *, sees_all: bool = False) -> ScopedAgent:
        """This agent seen through one owner (an API key's digest): their conversations only.

        `sees_all` (an admin key) sees every conversation. `scoped(None,
        sees_all=True)` is what a caller without keys gets: everything, as here.
        """
        from recursa.agent.scoped import ScopedAgent

        return ScopedAgent(self, owner, sees_all)

    def check_turn(
        self,
        text: str,
        *,
        conversation_id: int | None = None,
        system_prompt: str | None = None,
        title: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Check everything a turn needs before anything is written; store nothing.

        For a new conversation (`conversation_id` None) with this `title`,
        `system_prompt` and `settings`, or an existing one (whose system prompt
        `system_prompt` would replace): the message, the title, the system prompt,
        the settings, the model (loaded now) and that the system prompt and the
        message fit the prompt budget. Raises the error `send` would raise, each
        naming the input at fault, so a caller can create the conversation only
        once its first turn can run.
        """
        from recursa.agent.planning.prompt import check_fits_beside
        from recursa.agent.settings import nest_overrides
        from recursa.memory import validation

        text = check_text(text)
        validation.optional_text("The title", title)
        validation.optional_text("The system prompt", system_prompt)
        effective = self.settings.merged(nest_overrides(settings or {}))
        stored_system: str | None = None
        if conversation_id is not None:
            conv = self.get_conversation(conversation_id)
            effective = effective.merged(conv.settings)
            stored_system = conv.system_prompt
        runtime = self.load_model()
        system = system_prompt if system_prompt is not None else stored_system
        check_fits_beside(
            system if system is not None else effective.system_prompt, effective, runtime, text
        )

    def get_conversation(self, conversation_id: int) -> ConversationInfo:
        """One conversation; NotFoundError when the id is unknown."""
        conversation_id = check_id(conversation_id, "conversation_id")
        return self._store.get_conversation(conversation_id)

    def list_conversations(
        self,
        *,
        include_archived: bool = False,
        kind: ConversationKind | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ConversationInfo]:
        """Conversations, most recently active first; `kind` ("chat", "composition") filters."""
        return self._store.list_conversations(
            include_archived=include_archived, kind=kind, limit=limit, offset=offset
        )

    def rename_conversation(self, conversation_id: int, title: str | None) -> ConversationInfo:
        conversation_id = check_id(conversation_id, "conversation_id")
        return self._store.update_conversation(conversation_id, title=title)

    def archive_conversation(self, conversation_id: int, archived: bool = True) -> ConversationInfo:
        """Archive (or with archived=False, unarchive) a conversation."""
        conversation_id = check_id(conversation_id, "conversation_id")
        return self._store.update_conversation(conversation_id, archived=archived)

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete a conversation with its messages, summaries and traces."""
        conversation_id = check_id(conversation_id, "conversation_id")
        self._store.delete_conversation(conversation_id)

    def set_system_prompt(
        self, conversation_id: int, system_prompt: str | None
    ) -> ConversationInfo:
        """Change the conversation's system prompt (None: the default from settings)."""
        conversation_id = check_id(conversation_id, "conversation_id")
        return self._store.update_conversation(conversation_id, system_prompt=system_prompt)

    def set_conversation_settings(
        self, conversation_id: int, settings: Mapping[str, Any]
    ) -> ConversationInfo:
        """Replace the conversation's setting overrides (validated first)."""
        conversation_id = check_id(conversation_id, "conversation_id")
        from recursa.agent.settings import nest_overrides

        overrides = nest_overrides(settings)
        self.settings.merged(overrides)
        return self._store.update_conversation(conversation_id, settings=overrides)

    def settings_for(self, conversation_id: int) -> Settings:
        """The effective settings of a conversation (agent settings + its overrides)."""
        conversation_id = check_id(conversation_id, "conversation_id")
        return self.settings.merged(self._store.get_conversation(conversation_id).settings)

    def budget_for(self, conversation_id: int) -> int:
        """The prompt budget of a conversation's next turn, in tokens (loads the model)."""
        conversation_id = check_id(conversation_id, "conversation_id")
        s = self.settings_for(conversation_id)
        return compute_budget(self.runtime.context_window, s.budget)
