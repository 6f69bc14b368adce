"""The budget preview and the inspector of the main screen.

`PreviewMixin` is mixed into `MainScreen`. After a pause in typing, a thread
worker plans the next prompt (`Agent.preview_prompt`); the budget bar shows its
figures and the inspector, when open, shows the prompt itself. A selected reply
puts its stored prompt trace in the inspector instead, until the user types
again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent import NotFoundError, PromptPlan, RecursaError, SummaryInfo
from textual import work
from textual.worker import get_current_worker

if TYPE_CHECKING:
    from recursa.tui.screens.main import MainScreen
    from recursa.tui.widgets.chat import MessageView

PREVIEW_DELAY_S = 0.3  # typing pause before the next prompt is previewed
WIDE = 150  # narrower terminals hide the sidebar while the inspector is open


class PreviewMixin:
    """The next prompt's preview (budget bar and inspector) and the replies' prompt traces."""

    # --- the budget bar and the preview ------------------------------------------------

    def schedule_preview(self: MainScreen, now: bool = False) -> None:
        """Preview the next prompt after a pause in typing (debounced)."""
        if self._preview_timer is not None:
            self._preview_timer.stop()
        if not self.model_ready or self.conversation is None:
            return
        if now:
            self.preview(self.conversation.id, self.composer.text)
        else:
            cid, text = self.conversation.id, self.composer.text
            self._preview_timer = self.set_timer(PREVIEW_DELAY_S, lambda: self.preview(cid, text))

    @work(thread=True, exclusive=True, group="preview")
    def preview(self: MainScreen, cid: int, text: str) -> None:
        agent = self.agent
        try:
            plan = agent.preview_prompt(cid, text)
            chain = agent.summaries(cid) if plan.summary_id is not None else []
        except RecursaError as exc:
            self.ui(setattr, self.budget, "status", str(exc))
            return
        if not get_current_worker().is_cancelled:  # a newer preview replaced this one
            self.ui(self._show_preview, cid, text, plan, chain)

    async def _show_preview(
        self: MainScreen, cid: int, text: str, plan: PromptPlan, chain: list[SummaryInfo]
    ) -> None:
        if self.conversation is None or self.conversation.id != cid:
            return
        self.budget.status = ""
        self.budget.show_plan(plan)
        self.last_preview = (text, plan)
        if self.inspector_visible and self.inspect_target is None:
            await self.inspector.show_preview(plan, chain, placeholder=not text.strip())

    # --- the inspector ---------------------------------------------------------------------

    @property
    def inspector_visible(self: MainScreen) -> bool:
        return not self.inspector.has_class("-hidden")

    def action_toggle_inspector(self: MainScreen) -> None:
        self._show_inspector(not self.inspector_visible)
        if self.inspector_visible:
            self.refresh_inspector()

    def _show_inspector(self: MainScreen, show: bool) -> None:
        """Show or hide the inspector; on a narrow terminal it borrows the sidebar's room."""
        self.inspector.set_class(not show, "-hidden")
        if show and self.size.width < WIDE and not self.sidebar.has_class("-hidden"):
            self.sidebar.add_class("-hidden")
            self._sidebar_lent = True
        elif not show and self._sidebar_lent:
            self.sidebar.remove_class("-hidden")
            self._sidebar_lent = False

    def refresh_inspector(self: MainScreen) -> None:
        if self.inspect_target is not None:
            self.load_trace(self.inspect_target)
        elif self.conversation is not None and self.model_ready:
            self.schedule_preview(now=True)
        else:
            self.run_worker(self.inspector.show_note("Nothing to inspect yet."))

    def inspect_reply(self: MainScreen, view: MessageView | None) -> None:
        """A message was selected: a stored reply becomes the inspector's subject."""
        if view is not None and view.data.role == "assistant" and view.data.id is not None:
            self.inspect_target = view.data.id
            if self.inspector_visible:
                self.load_trace(view.data.id)

    @work(thread=True, exclusive=True, group="trace")
    def load_trace(self: MainScreen, message_id: int) -> None:
        agent = self.agent
        try:
            message = agent.get_message(message_id)
            trace = agent.trace(message_id)
            chain = agent.summaries(message.conversation_id) if trace.summary_id else []
        except NotFoundError:
            self.ui(
                self.inspector.show_note,
                "This reply has no stored prompt trace (it was imported, not generated).",
            )
            return
        except RecursaError as exc:
            self.ui(self.inspector.show_note, str(exc))
            return
        if not get_current_worker().is_cancelled:
            self.ui(self.inspector.show_trace, trace, message.seq, chain)
