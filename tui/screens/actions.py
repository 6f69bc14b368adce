"""Message and conversation commands of the main screen: pin, copy, rate, rename, delete…

`ActionsMixin` is mixed into `MainScreen`; each action asks the Agent through
the screen's `run_db` worker and updates the widgets with the result. The
`ScreenParts` protocol names what the actions need from the screen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from recursa.agent import ConversationInfo, MessageInfo
from recursa.tui.screens.dialogs import ConfirmDialog, TextDialog
from recursa.tui.screens.help import HelpScreen
from recursa.tui.widgets.chat import ChatView, MessageData, MessageView
from recursa.tui.widgets.composer import Composer
from recursa.tui.widgets.inspector import Inspector
from recursa.tui.widgets.sidebar import Sidebar, conversation_title

if TYPE_CHECKING:
    from recursa.agent import Agent
    from textual.app import App
    from textual.notifications import SeverityLevel


class ScreenParts(Protocol):
    """What the actions use of the main screen."""

    conversation: ConversationInfo | None
    inspect_target: int | None
    sub_title: str | None
    _sidebar_lent: bool

    @property
    def app(self) -> App[Any]: ...
    @property
    def agent(self) -> Agent: ...
    @property
    def chat(self) -> ChatView: ...
    @property
    def sidebar(self) -> Sidebar: ...
    @property
    def composer(self) -> Composer: ...
    @property
    def inspector(self) -> Inspector: ...

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None: ...
    def run_db(
        self, fn: Callable[[], Any], then: Callable[[Any], Any] | None = None, what: str = ""
    ) -> Any: ...
    def open_conversation(self, conversation_id: int, seq: int | None = None) -> None: ...
    def refresh_conversations(self) -> None: ...
    def load_start(self, conversation_id: int | None) -> Any: ...
    def load_trace(self, message_id: int) -> Any: ...
    def schedule_preview(self, now: bool = False) -> None: ...
    def _show_inspector(self, show: bool) -> None: ...
    def _require_conversation(self) -> ConversationInfo | None: ...
    def _selected_view(self, *, reply: bool = False) -> MessageView | None: ...
    def _rate(self, good: bool) -> None: ...
    def _after_removal(self, cid: int) -> None: ...
    def rename(self, cid: int) -> None: ...
    def archive(self, cid: int) -> None: ...
    def delete(self, cid: int) -> None: ...


class ActionsMixin:
    """The commands on the selected message and on conversations."""

    # --- message actions -------------------------------------------------------------------

    def _selected_view(self: ScreenParts, *, reply: bool = False) -> MessageView | None:
        view = self.chat.selected
        if view is None:
            views = [
                v
                for v in self.chat.message_views
                if v.data.id is not None and (not reply or v.data.role == "assistant")
            ]
            view = views[-1] if views else None
        if view is None or view.data.id is None:
            self.notify("No message selected.", severity="warning")
            return None
        if reply and view.data.role != "assistant":
            self.notify("Select a reply (an assistant message).", severity="warning")
            return None
        return view

    def action_pin_message(self: ScreenParts) -> None:
        view = self._selected_view()
        if view is None or view.data.id is None:
            return
        mid, pinned = view.data.id, view.data.pinned
        agent = self.agent

        def done(info: MessageInfo) -> None:
            view.update_data(MessageData.from_info(info))
            self.notify(
                "Pinned: it stays in every prompt." if info.pinned else "Unpinned.", timeout=3
            )
            self.schedule_preview(now=True)

        self.run_db(lambda: agent.unpin(mid) if pinned else agent.pin(mid), done, "Pin")

    def action_copy_message(self: ScreenParts) -> None:
        view = self._selected_view()
        if view is not None:
            self.app.copy_to_clipboard(view.text)
            self.notify("Copied the message to the clipboard.", timeout=3)

    def _rate(self: ScreenParts, good: bool) -> None:
        view = self._selected_view(reply=True)
        if view is None or view.data.id is None:
            return
        mid, current = view.data.id, view.data.rating
        # The same verdict again clears it (the view shows any positive rating as good).
        new = None if current is not None and (current > 0) == good else good

        def done(info: MessageInfo) -> None:
            view.update_data(MessageData.from_info(info))

        self.run_db(lambda: self.agent.rate(mid, new), done, "Rating")

    def action_rate_good(self: ScreenParts) -> None:
        self._rate(True)

    def action_rate_bad(self: ScreenParts) -> None:
        self._rate(False)

    def action_inspect_message(self: ScreenParts) -> None:
        view = self._selected_view(reply=True)
        if view is None or view.data.id is None:
            return
        self.inspect_target = view.data.id
        self._show_inspector(True)
        self.load_trace(view.data.id)

    def action_focus_messages(self: ScreenParts) -> None:
        self.chat.focus()

    def action_focus_composer(self: ScreenParts) -> None:
        self.composer.focus()

    # --- conversation actions ----------------------------------------------------------

    def action_help(self: ScreenParts) -> None:
        self.app.push_screen(HelpScreen())

    def action_toggle_sidebar(self: ScreenParts) -> None:
        self.sidebar.toggle_class("-hidden")
        self._sidebar_lent = False

    def action_new_conversation(self: ScreenParts) -> None:
        if getattr(self.app, "agent", None) is None:
            return

        def made(cid: int) -> None:
            self.open_conversation(cid)
            self.refresh_conversations()
            self.composer.focus()

        self.run_db(lambda: self.agent.create_conversation(), made, "New conversation")

    def action_rename_conversation(self: ScreenParts) -> None:
        if (conv := self._require_conversation()) is not None:
            self.rename(conv.id)

    def action_archive_conversation(self: ScreenParts) -> None:
        if (conv := self._require_conversation()) is not None:
            self.archive(conv.id)

    def action_delete_conversation(self: ScreenParts) -> None:
        if (conv := self._require_conversation()) is not None:
            self.delete(conv.id)

    def rename(self: ScreenParts, cid: int) -> None:
        agent = self.agent

        def ask(info: ConversationInfo) -> None:
            def answered(title: str | None) -> None:
                if title is None:
                    return
                self.run_db(
                    lambda: agent.rename_conversation(cid, title.strip() or None), renamed, "Rename"
                )

            self.app.push_screen(TextDialog("Rename the conversation", info.title or ""), answered)

        def renamed(info: ConversationInfo) -> None:
            if self.conversation is not None and self.conversation.id == info.id:
                self.conversation = info
                self.sub_title = conversation_title(info)
            self.refresh_conversations()

        self.run_db(lambda: agent.get_conversation(cid), ask, "Rename")

    def archive(self: ScreenParts, cid: int) -> None:
        agent = self.agent

        def archived(info: ConversationInfo) -> None:
            self.notify(f"Archived “{conversation_title(info)}”.", timeout=3)
            self._after_removal(cid)

        self.run_db(lambda: agent.archive_conversation(cid), archived, "Archive")

    def delete(self: ScreenParts, cid: int) -> None:
        agent = self.agent

        def ask(info: ConversationInfo) -> None:
            question = (
                f"Delete “{conversation_title(info)}” and its {info.message_count} "
                "messages, summaries and traces? This cannot be undone."
            )

            def answered(yes: bool | None) -> None:
                if yes:
                    self.run_db(
                        lambda: agent.delete_conversation(cid),
                        lambda _: self._after_removal(cid),
                        "Delete",
                    )

            self.app.push_screen(ConfirmDialog(question), answered)

        self.run_db(lambda: agent.get_conversation(cid), ask, "Delete")

    def _after_removal(self: ScreenParts, cid: int) -> None:
        if self.conversation is not None and self.conversation.id == cid:
            self.conversation = None
            self.load_start(None)
        else:
            self.refresh_conversations()

    def action_edit_system_prompt(self: ScreenParts) -> None:
        conv = self._require_conversation()
        if conv is None:
            return
        agent = self.agent
        cid = conv.id

        def ask(info: ConversationInfo) -> None:
            current = info.system_prompt
            default = agent.settings.system_prompt

            def answered(text: str | None) -> None:
                if text is None:
                    return
                value = text.strip() or None
                self.run_db(lambda: agent.set_system_prompt(cid, value), saved, "System prompt")

            hint = "Leave empty to use the default: " + default
            self.app.push_screen(
                TextDialog(
                    "System prompt (Ctrl+S saves)",
                    current if current is not None else default,
                    multiline=True,
                    hint=hint,
                ),
                answered,
            )

        def saved(info: ConversationInfo) -> None:
            if self.conversation is not None and self.conversation.id == info.id:
                self.conversation = info
            self.notify("System prompt saved.", timeout=3)
            self.schedule_preview(now=True)

        self.run_db(lambda: agent.get_conversation(cid), ask, "System prompt")
