"""Chat turns on the main screen: send a message, stream the reply, stop it, regenerate it.

`TurnsMixin` is mixed into `MainScreen`. A sent message and a reply
placeholder are mounted at once; the turn runs in an exclusive thread worker
that iterates the Agent's reply stream and hands each chunk to the event loop.
When the turn ends the stored messages replace the placeholders, and the budget
bar says so while the reply's compaction (folding) runs in the background.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent import ConversationInfo, MessageInfo, RecursaError, Reply, TurnFailedError
from recursa.tui.widgets.chat import MessageData, MessageView
from recursa.tui.widgets.sidebar import conversation_title
from textual import work

if TYPE_CHECKING:
    from recursa.tui.screens.main import MainScreen

FOLDING_POLL_S = 0.25  # how often the budget bar asks whether the folding has ended


def title_from(text: str) -> str:
    """A conversation title from its first message: the first line, cut at 48 characters."""
    line = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    return line if len(line) <= 48 else line[:47] + "…"


class TurnsMixin:
    """Sending a message and streaming its reply; stop and regenerate."""

    # --- sending ----------------------------------------------------------------------------

    def submit(self: MainScreen, text: str) -> None:
        """The composer's text was submitted: send it (or keep it until the model is loaded)."""
        if not text.strip():
            return
        if not self.model_ready:
            if self.rapp.model_error is not None:
                self.notify(
                    "No model is loaded, so nothing can be answered; see the error shown at "
                    "start-up for the fix.",
                    severity="warning",
                )
                return
            self.composer.clear()
            self._send_while_loading(text)
            return
        if self.streaming:
            self.notify("A reply is still being written; Esc stops it.", severity="warning")
            return
        self.composer.clear()
        if self.conversation is None:

            def made(cid: int) -> None:
                self._after_create(cid, text)

            self.run_db(
                lambda: self.agent.create_conversation(title=title_from(text)),
                made,
                "New conversation",
            )
        else:
            self.run_worker(self._send(self.conversation.id, text), group="send")

    def _after_create(self: MainScreen, cid: int, text: str) -> None:
        def opened(info: ConversationInfo) -> None:
            self.conversation = info
            self.sub_title = conversation_title(info)
            self.chat.conversation_id = info.id
            self.run_worker(self._send(info.id, text), group="send")

        self.run_db(lambda: self.agent.get_conversation(cid), opened, "New conversation")

    async def _send(self: MainScreen, cid: int, text: str | None) -> None:
        """Show the message and a reply placeholder, then generate in a thread worker."""
        if self.chat.has_newer:  # opened mid-way (a search hit): show the newest page first
            await self.load_conversation(cid, None).wait()
        user_view = None
        if text is not None:
            user_view = await self.chat.add_message(MessageData(None, None, "user", text))
        reply_view = await self.chat.add_message(MessageData(None, None, "assistant", ""))
        self._stream = None
        self.generate(cid, text, user_view, reply_view)

    # --- streaming --------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="generate")
    def generate(
        self: MainScreen,
        cid: int,
        text: str | None,
        user_view: MessageView | None,
        reply_view: MessageView,
        answer: bool = False,
    ) -> None:
        """Run a turn (a regeneration; `answer`: reply to a stored message) into `reply_view`."""
        agent = self.agent
        call = self.ui
        try:
            if answer:
                stream = agent.stream_answer(cid)
            elif text is not None:
                stream = agent.stream(cid, text)
            else:
                stream = agent.stream_regenerate(cid)
        except RecursaError as exc:
            call(self._turn_refused, str(exc), text, user_view, reply_view)
            return
        self._stream = stream
        reply: Reply | None = None
        error: str | None = None
        try:
            for chunk in stream:
                if chunk.event == "text" and chunk.text:
                    call(self._append, reply_view, chunk.text)
                elif chunk.event == "compacting":
                    call(setattr, self.budget, "compacting", True)
            reply = stream.reply
        except TurnFailedError as exc:
            reply, error = exc.reply, str(exc)
        except RecursaError as exc:
            error = str(exc)
        finally:
            self._stream = None
        call(self._turn_done, cid, reply, error, user_view, reply_view, text is None and not answer)

    async def _append(self: MainScreen, view: MessageView, text: str) -> None:
        if view.is_attached:
            await view.append_text(text)  # an anchored chat view follows the growing reply

    async def _turn_refused(
        self: MainScreen,
        message: str,
        text: str | None,
        user_view: MessageView | None,
        reply_view: MessageView,
    ) -> None:
        for view in (user_view, reply_view):
            if view is not None and view.is_attached:
                await view.remove()
        if text is not None and not self.composer.text:
            self.composer.text = text  # give the user their words back to fix
        self.notify(message, title="Not sent", severity="error", timeout=10)

    async def _turn_done(
        self: MainScreen,
        cid: int,
        reply: Reply | None,
        error: str | None,
        user_view: MessageView | None,
        reply_view: MessageView,
        regenerated: bool,
    ) -> None:
        self.budget.compacting = False
        if reply_view.is_attached:
            await reply_view.finish_stream()
        if error:
            self.notify(error, title="The model failed", severity="error", timeout=10)
        if reply is not None:
            if reply.usage is not None:
                self.budget.show_reply_speed(
                    reply.usage.time_to_first_token_s, reply.usage.decode_tokens_per_s
                )
            if reply.status == "interrupted":
                self.notify("Stopped: the partial reply was kept.", timeout=3)

            def fetch() -> list[MessageInfo]:
                return [
                    self.agent.get_message(reply.user_message_id),
                    self.agent.get_message(reply.message_id),
                ]

            def show(found: list[MessageInfo]) -> None:
                user, assistant = found
                if user_view is not None and user_view.is_attached:
                    user_view.update_data(MessageData.from_info(user))
                if reply_view.is_attached:
                    reply_view.update_data(MessageData.from_info(assistant))
                if self.inspector.display and not self.inspector.has_class("-hidden"):
                    self.refresh_inspector()

            self.run_db(fetch, show, "Reading the reply")
            self._watch_folding(cid)
        elif reply_view.is_attached and not reply_view.text:
            await reply_view.remove()
        if regenerated and self.conversation is not None and self.conversation.id == cid:
            self.load_conversation(cid, None)  # earlier replies are now marked superseded
        self.refresh_conversations()
        self.schedule_preview(now=True)

    def _watch_folding(self: MainScreen, conversation_id: int) -> None:
        """Say so in the budget bar while the reply's compaction runs in the background.

        When it ends the prompt's figures change (the window shrank, the summary
        grew), so the preview is computed again.
        """
        if self._folding_timer is not None:
            self._folding_timer.stop()

        def check() -> None:
            shown = self.conversation is not None and self.conversation.id == conversation_id
            folding = shown and self.agent.background_busy(conversation_id, "compact")
            if self.budget.folding and not folding:
                self.schedule_preview(now=True)
            self.budget.folding = folding
            if not folding and self._folding_timer is not None:
                self._folding_timer.stop()
                self._folding_timer = None

        check()
        self._folding_timer = self.set_interval(FOLDING_POLL_S, check)

    # --- stop and regenerate ----------------------------------------------------------------

    def action_stop(self: MainScreen) -> None:
        """Stop the reply (or composition) being generated; what was written is stored, marked."""
        stream = self._stream
        if stream is not None:
            stream.cancel()
        self.stop_composition()

    def action_regenerate(self: MainScreen) -> None:
        conv = self._require_conversation()
        if conv is None:
            return
        if not self.model_ready:
            self.notify("The model is not loaded yet.", severity="warning")
            return
        if self.streaming:
            self.notify("A reply is still being written; Esc stops it.", severity="warning")
            return
        self.run_worker(self._send(conv.id, None), group="send")
