"""Conversations on the main screen: open one, page its messages, list and search them all.

`ConversationsMixin` is mixed into `MainScreen`. Opening a conversation fetches
one page of messages (the newest, or the one around a search hit) in an
exclusive thread worker, so opening another cancels it; scrolling to either end
of the chat view fetches one more page. The sidebar's list and its search run
in workers of their own, the newest one winning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent import ConversationInfo, MessageInfo, NotFoundError, RecursaError
from recursa.tui.widgets.sidebar import conversation_title
from textual import work
from textual.worker import get_current_worker

if TYPE_CHECKING:
    from recursa.tui.screens.main import MainScreen

PAGE = 40  # messages mounted when a conversation opens; as many again per scroll
LIST_LIMIT = 500  # most recent conversations in the list; search reaches all of them
SEARCH_DELAY_S = 0.2  # typing pause before the search runs
FIRST_RUN = (
    "Welcome to recursa.\n\n"
    "Type a message below and press Enter to start a conversation "
    "(Ctrl+J inserts a line break).\n"
    "F1 lists every key; Ctrl+P opens the command palette."
)


class ConversationsMixin:
    """Opening conversations, paging their messages, the sidebar's list and search."""

    # --- opening a conversation ---------------------------------------------------------

    @work(thread=True, exclusive=True, group="load")
    def load_start(self: MainScreen, conversation_id: int | None) -> None:
        """Open the given conversation (or the most recent one, or the first-run view)."""
        agent = self.agent
        conversations = agent.list_conversations(limit=LIST_LIMIT)
        if conversation_id is not None:
            try:
                agent.get_conversation(conversation_id)
            except NotFoundError as exc:
                self.ui(self.notify, str(exc), severity="error")
                conversation_id = None
        if conversation_id is None and conversations:
            conversation_id = conversations[0].id
        self.ui(self.show_list, conversations, conversation_id)
        if conversation_id is None:
            self.ui(self._show_first_run)
        else:
            self._load(conversation_id, None)

    def _show_first_run(self: MainScreen) -> None:
        self.conversation = None
        self.sub_title = ""
        self.chat.show_empty(FIRST_RUN)
        self.budget.figures = None

    def open_conversation(self: MainScreen, conversation_id: int, seq: int | None = None) -> None:
        self.load_conversation(conversation_id, seq)

    @work(thread=True, exclusive=True, group="load")
    def load_conversation(self: MainScreen, conversation_id: int, seq: int | None) -> None:
        self._load(conversation_id, seq)

    def _load(self: MainScreen, conversation_id: int, seq: int | None) -> None:
        """Fetch one page (the newest, or the one around `seq`) and show it (worker thread)."""
        agent = self.agent
        try:
            info = agent.get_conversation(conversation_id)
            if seq is None:
                newest = agent.messages(conversation_id, limit=PAGE + 1, newest_first=True)
                has_older, has_newer = len(newest) > PAGE, False
                page = list(reversed(newest[:PAGE]))
            else:
                half = PAGE // 2
                older = agent.messages(
                    conversation_id, before_seq=seq + 1, limit=half + 1, newest_first=True
                )
                newer = agent.messages(conversation_id, after_seq=seq, limit=half + 1)
                has_older, has_newer = len(older) > half, len(newer) > half
                page = list(reversed(older[:half])) + newer[:half]
            speed = self._last_speed(page)
        except RecursaError as exc:
            self.ui(self.notify, str(exc), severity="error")
            return
        if not get_current_worker().is_cancelled:  # another conversation was opened since
            self.ui(self._show_page, info, page, has_older, has_newer, seq, speed)
            # Prefill its prompt while the user reads: the first message then starts fast.
            # (Before the model is loaded this does nothing; `model_loaded` warms it then.)
            try:
                agent.warm(conversation_id)
            except RecursaError as exc:
                self.ui(self.notify, str(exc), severity="error")

    def _last_speed(
        self: MainScreen, page: list[MessageInfo]
    ) -> tuple[float | None, float | None] | None:
        last = next((m for m in reversed(page) if m.role == "assistant"), None)
        if last is None:
            return None
        try:
            trace = self.agent.trace(last.id)
        except NotFoundError:  # imported replies have no trace
            return None
        ttft = trace.timings.get("ttft_s")
        return ttft, trace.usage.get("decode_tokens_per_s")

    async def _show_page(
        self: MainScreen,
        info: ConversationInfo,
        page: list[MessageInfo],
        has_older: bool,
        has_newer: bool,
        seq: int | None,
        speed: tuple[float | None, float | None] | None,
    ) -> None:
        changed = self.conversation is None or self.conversation.id != info.id
        await self.chat.show_page(
            info.id, page, has_older=has_older, has_newer=has_newer, focus_seq=seq
        )
        self.conversation = info
        self.sub_title = conversation_title(info)
        if seq is not None:
            self.chat.focus()
        if changed:
            self.inspect_target = None
            self.budget.last_reply = ""
            self._mark_current(info.id)
        if speed is not None:
            self.budget.show_reply_speed(*speed)
        self.schedule_preview(now=True)

    # --- paging -------------------------------------------------------------------------

    def load_older(self: MainScreen, before_seq: int) -> None:
        """Mount the page before `before_seq` above the chat view's first message."""
        cid = self.chat.conversation_id
        if cid is None:
            return

        def fetch() -> list[MessageInfo]:
            return self.agent.messages(
                cid, before_seq=before_seq, limit=PAGE + 1, newest_first=True
            )

        async def show(found: list[MessageInfo]) -> None:
            if self.chat.conversation_id == cid:
                await self.chat.prepend(list(reversed(found[:PAGE])), has_older=len(found) > PAGE)

        self.run_db(fetch, show, "Loading messages")

    def load_newer(self: MainScreen, after_seq: int) -> None:
        """Mount the page after `after_seq` below the chat view's last message."""
        cid = self.chat.conversation_id
        if cid is None:
            return

        def fetch() -> list[MessageInfo]:
            return self.agent.messages(cid, after_seq=after_seq, limit=PAGE + 1)

        async def show(found: list[MessageInfo]) -> None:
            if self.chat.conversation_id == cid:
                await self.chat.extend(found[:PAGE], has_newer=len(found) > PAGE)

        self.run_db(fetch, show, "Loading messages")

    # --- the sidebar's list ---------------------------------------------------------------

    def _mark_current(self: MainScreen, conversation_id: int) -> None:
        for item in self.sidebar.conversation_list.children:
            info = getattr(item, "info", None)
            if info is not None:
                item.set_class(info.id == conversation_id, "-current")

    def show_list(
        self: MainScreen, conversations: list[ConversationInfo], current: int | None
    ) -> None:
        """Refill the sidebar; one refill at a time, the newest wins."""
        self.run_worker(
            self.sidebar.show_conversations(conversations, current), group="sidebar", exclusive=True
        )

    def refresh_conversations(self: MainScreen) -> None:
        def done(conversations: list[ConversationInfo]) -> None:
            self.show_list(conversations, self.conversation.id if self.conversation else None)

        agent = self.agent
        self.run_db(
            lambda: agent.list_conversations(limit=LIST_LIMIT), done, "Listing conversations"
        )

    # --- search ---------------------------------------------------------------------------

    def search_soon(self: MainScreen, query: str) -> None:
        """Search after a pause in typing (debounced); an empty query searches nothing."""
        if self._search_timer is not None:
            self._search_timer.stop()
        if query and self.rapp.agent is not None:
            self._search_timer = self.set_timer(SEARCH_DELAY_S, lambda: self.run_search(query))

    @work(thread=True, exclusive=True, group="search")
    def run_search(self: MainScreen, query: str) -> None:
        agent = self.agent
        try:
            hits = agent.search(query, limit=50)
            titles = {
                c.id: conversation_title(c) for c in agent.list_conversations(include_archived=True)
            }
        except RecursaError as exc:
            self.ui(self.notify, str(exc), severity="error")
            return
        if not get_current_worker().is_cancelled:
            self.ui(self.sidebar.show_results, hits, titles)

    def action_search(self: MainScreen) -> None:
        self.sidebar.focus_search()
