"""Start-up of the main screen: the store opens, the model loads, messages typed meanwhile wait.

`LoadingMixin` is mixed into `MainScreen`; the app calls its hooks as the
start-up goes (`agent_opened`, `loading_progress`, `model_loaded`,
`model_failed`). The conversations can be read before the model is ready: a
message sent meanwhile is stored at once, shown as waiting, and answered when
the model is loaded (or left stored, and said so, when it cannot be).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from recursa.agent import ConversationInfo, MessageInfo
from recursa.tui.screens.turns import title_from
from recursa.tui.widgets.chat import MessageData, MessageView
from recursa.tui.widgets.sidebar import conversation_title
from textual.widgets import Label, ProgressBar

if TYPE_CHECKING:
    from recursa.tui.screens.main import MainScreen


class LoadingMixin:
    """The start-up hooks, and the messages sent while the model loads."""

    # Set by `MainScreen.__init__`; declared here for the tuple assignments below.
    _waiting_cid: int | None
    _waiting_views: list[MessageView]

    # --- start-up (called by the app) ----------------------------------------------------

    def agent_opened(self: MainScreen, conversation_id: int | None) -> None:
        """The store is open: show the conversations and open one."""
        self.load_start(conversation_id)

    def loading_progress(self: MainScreen, message: str, fraction: float | None) -> None:
        box = self.query_one("#loading")
        box.add_class("-active")
        self.query_one("#loading-label", Label).update(message)
        bar = self.query_one("#loading-bar", ProgressBar)
        if fraction is None:
            bar.update(total=None)
        else:
            bar.update(total=100, progress=round(fraction * 100))

    def model_loaded(self: MainScreen) -> None:
        self.model_ready = True
        self.query_one("#loading").remove_class("-active")
        self.budget.status = ""
        self.schedule_preview(now=True)
        if self._waiting_cid is not None:
            self.run_worker(self._answer_waiting(), group="send")
        elif self.conversation is not None:
            self._warm(self.conversation.id)
        # Semantic recall asked for but not available here: say so once. (Turned off on
        # purpose with recall.embedder = "none", it needs no reminder.)
        if self.agent.settings.recall.embedder != "none":
            notice = self.agent.recall_notice()
            if notice is not None:
                self.notify(notice, title="Recall", severity="warning", timeout=10)

    def model_failed(self: MainScreen) -> None:
        self.query_one("#loading").remove_class("-active")
        self.budget.status = "no model: browsing stored conversations only"
        if self._waiting_cid is not None:
            self.notify(
                "The model could not be loaded; the messages you sent are stored and will be "
                "answered when you open recursa with a working model (r answers again).",
                severity="warning",
                timeout=10,
            )
            for view in self._waiting_views:
                if view.is_attached:
                    view.update_data(replace(view.data, waiting=False))
            self._waiting_cid, self._waiting_views = None, []

    def _warm(self: MainScreen, conversation_id: int) -> None:
        """Prefill the conversation's prompt in the background, so its next message starts fast."""
        self.run_db(lambda: self.agent.warm(conversation_id), what="Preparing the conversation")

    # --- messages sent while the model loads -------------------------------------------------

    def _send_while_loading(self: MainScreen, text: str) -> None:
        """Store the message now, show it as waiting, answer it once the model is loaded."""
        if self._waiting_cid is not None and (
            self.conversation is None or self.conversation.id != self._waiting_cid
        ):
            self.notify(
                "A message in another conversation is waiting for the model; this one will be "
                "answered after it.",
                severity="warning",
            )
        conversation = self.conversation

        def store() -> tuple[ConversationInfo, MessageInfo]:
            agent = self.agent
            info = conversation
            if info is None:
                info = agent.get_conversation(agent.create_conversation(title=title_from(text)))
            return info, agent.add_message(info.id, text)

        async def show(stored: tuple[ConversationInfo, MessageInfo]) -> None:
            info, message = stored
            if self.conversation is None:
                self.conversation = info
                self.sub_title = conversation_title(info)
                self.chat.conversation_id = info.id
                self.refresh_conversations()
            if self.model_ready:  # loaded meanwhile: model_loaded found nothing to answer
                self._waiting_cid = info.id
                await self._answer_waiting()
                return
            self._waiting_cid = info.id
            if self.conversation is not None and self.conversation.id == info.id:
                data = replace(MessageData.from_info(message), waiting=True)
                self._waiting_views.append(await self.chat.add_message(data))

        self.run_db(store, show, "Not sent")

    async def _answer_waiting(self: MainScreen) -> None:
        """The model is ready: answer the message(s) sent while it loaded."""
        cid, views = self._waiting_cid, self._waiting_views
        self._waiting_cid, self._waiting_views = None, []
        if cid is None:
            return
        for view in views:
            if view.is_attached:
                view.update_data(replace(view.data, waiting=False))
        if self.conversation is None or self.conversation.id != cid:
            # Another conversation is shown: answer in the background; it shows when reopened.
            self.run_db(lambda: self.agent.answer(cid), what="Answering a waiting message")
            return
        user_view = views[-1] if views else None
        reply_view = await self.chat.add_message(MessageData(None, None, "assistant", ""))
        self._stream = None
        self.generate(cid, None, user_view, reply_view, answer=True)
