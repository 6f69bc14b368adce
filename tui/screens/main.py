"""The main screen: sidebar, chat view, message box, budget bar and inspector, wired to the Agent.

The screen composes the widgets, listens to their messages and runs every
call to the Agent in a thread worker (database reads and writes, previews,
generation), handing results back with `call_from_thread`. Widgets never touch
the Agent; the screen holds no dialogue logic of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from recursa.agent import (
    ConversationInfo,
    MessageInfo,
    NotFoundError,
    PromptPlan,
    RecursaError,
    Reply,
    ReplyStream,
    SummaryInfo,
    TurnFailedError,
)
from recursa.tui.commands import bindings
from recursa.tui.safe_text import one_line, terminal_safe
from recursa.tui.screens.actions import ActionsMixin
from recursa.tui.screens.compose import ComposeMixin
from recursa.tui.widgets.budget import BudgetBar
from recursa.tui.widgets.chat import ChatView, MessageData, MessageView
from recursa.tui.widgets.composer import Composer
from recursa.tui.widgets.inspector import Inspector
from recursa.tui.widgets.sidebar import Sidebar, conversation_title
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Label, ProgressBar
from textual.worker import get_current_worker

if TYPE_CHECKING:
    from recursa.agent import Agent
    from recursa.tui.app import RecursaApp
    from textual.notifications import SeverityLevel

T = TypeVar("T")

PAGE = 40  # messages mounted when a conversation opens; as many again per scroll
LIST_LIMIT = 500  # most recent conversations in the list; search reaches all of them
PREVIEW_DELAY_S = 0.3  # typing pause before the next prompt is previewed
WIDE = 150  # narrower terminals hide the sidebar while the inspector is open
FIRST_RUN = (
    "Welcome to recursa.\n\n"
    "Type a message below and press Enter to start a conversation "
    "(Ctrl+J inserts a line break).\n"
    "F1 lists every key; Ctrl+P opens the command palette."
)


def title_from(text: str) -> str:
    """A conversation title from its first message: the first line, cut at 48 characters."""
    line = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    return line if len(line) <= 48 else line[:47] + "…"


class MainScreen(ComposeMixin, ActionsMixin, Screen[None]):
    """The chat screen."""

    BINDINGS = bindings("app")

    DEFAULT_CSS = """
    MainScreen #body { height: 1fr; }
    MainScreen #main { width: 1fr; }
    MainScreen #chat { height: 1fr; }
    MainScreen #loading { height: 1; padding: 0 1; display: none; }
    MainScreen #loading.-active { display: block; }
    MainScreen #loading Label { width: auto; margin: 0 2 0 0; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.conversation: ConversationInfo | None = None
        self.model_ready = False
        self.inspect_target: int | None = None  # a reply's message id, or None: the composer
        self._stream: ReplyStream | None = None
        self._preview_timer: Timer | None = None
        self._search_timer: Timer | None = None
        self._folding_timer: Timer | None = None
        self.last_preview: tuple[str, PromptPlan] | None = None
        self._sidebar_lent = False  # hidden to make room for the inspector
        # Messages sent while the model loads: stored at once, answered once it is ready.
        self._waiting_cid: int | None = None
        self._waiting_views: list[MessageView] = []

    # --- composition ------------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A notification whose text is shown as text: stored titles and error messages are
        never read as markup, and their control characters are escaped."""
        super().notify(
            terminal_safe(message),
            title=one_line(title),
            severity=severity,
            timeout=timeout,
            markup=markup,
        )

    def compose(self) -> ComposeResult:
        yield Header(icon="≡")
        with Horizontal(id="body"):
            yield Sidebar(id="sidebar")
            with Vertical(id="main"):
                yield ChatView(id="chat")
                with Horizontal(id="loading"):
                    yield Label("Loading the model…", id="loading-label")
                    yield ProgressBar(id="loading-bar", show_eta=False)
                yield Composer(id="composer")
                yield BudgetBar(id="budget")
            yield Inspector(id="inspector", classes="-hidden")
        yield Footer()

    @property
    def agent(self) -> Agent:
        agent = self.rapp.agent
        assert agent is not None, "the agent is opened before the screen uses it"
        return agent

    @property
    def rapp(self) -> RecursaApp:
        return self.app  # type: ignore[return-value]

    @property
    def chat(self) -> ChatView:
        return self.query_one(ChatView)

    @property
    def sidebar(self) -> Sidebar:
        return self.query_one(Sidebar)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    @property
    def budget(self) -> BudgetBar:
        return self.query_one(BudgetBar)

    @property
    def inspector(self) -> Inspector:
        return self.query_one(Inspector)

    @property
    def streaming(self) -> bool:
        return self._stream is not None or self.composing

    def on_mount(self) -> None:
        self.composer.focus()

    # --- start-up (called by the app) ----------------------------------------------------

    def agent_opened(self, conversation_id: int | None) -> None:
        """The store is open: show the conversations and open one."""
        self.load_start(conversation_id)

    def loading_progress(self, message: str, fraction: float | None) -> None:
        box = self.query_one("#loading")
        box.add_class("-active")
        self.query_one("#loading-label", Label).update(message)
        bar = self.query_one("#loading-bar", ProgressBar)
        if fraction is None:
            bar.update(total=None)
        else:
            bar.update(total=100, progress=round(fraction * 100))

    def model_loaded(self) -> None:
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

    def model_failed(self) -> None:
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

    def _watch_folding(self, conversation_id: int) -> None:
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
        self._folding_timer = self.set_interval(0.25, check)

    def _warm(self, conversation_id: int) -> None:
        """Prefill the conversation's prompt in the background, so its next message starts fast."""
        self.run_db(lambda: self.agent.warm(conversation_id), what="Preparing the conversation")

    # --- helpers ---------------------------------------------------------------------------

    @work(thread=True, group="db")
    def run_db(
        self, fn: Callable[[], T], then: Callable[[T], Any] | None = None, what: str = ""
    ) -> None:
        """Run a store call off the event loop; RecursaErrors become an error notification."""
        try:
            result = fn()
        except RecursaError as exc:
            self.ui(self.notify, str(exc), title=what or "Error", severity="error")
            return
        if then is not None:
            self.ui(then, result)

    def ui(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """From a worker thread: run `fn` (sync or async) on the event loop; return its result."""
        return self.app.call_from_thread(fn, *args, **kwargs)

    def _require_conversation(self) -> ConversationInfo | None:
        if self.conversation is None:
            self.notify("Open or start a conversation first.", severity="warning")
        return self.conversation

    # --- conversations ------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load")
    def load_start(self, conversation_id: int | None) -> None:
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

    def _show_first_run(self) -> None:
        self.conversation = None
        self.sub_title = ""
        self.chat.show_empty(FIRST_RUN)
        self.budget.figures = None

    def open_conversation(self, conversation_id: int, seq: int | None = None) -> None:
        self.load_conversation(conversation_id, seq)

    @work(thread=True, exclusive=True, group="load")
    def load_conversation(self, conversation_id: int, seq: int | None) -> None:
        self._load(conversation_id, seq)

    def _load(self, conversation_id: int, seq: int | None) -> None:
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

    def _last_speed(self, page: list[MessageInfo]) -> tuple[float | None, float | None] | None:
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
        self,
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

    def _mark_current(self, conversation_id: int) -> None:
        for item in self.sidebar.conversation_list.children:
            info = getattr(item, "info", None)
            if info is not None:
                item.set_class(info.id == conversation_id, "-current")

    def show_list(self, conversations: list[ConversationInfo], current: int | None) -> None:
        """Refill the sidebar; one refill at a time, the newest wins."""
        self.run_worker(
            self.sidebar.show_conversations(conversations, current), group="sidebar", exclusive=True
        )

    def refresh_conversations(self) -> None:
        def done(conversations: list[ConversationInfo]) -> None:
            self.show_list(conversations, self.conversation.id if self.conversation else None)

        agent = self.agent
        self.run_db(
            lambda: agent.list_conversations(limit=LIST_LIMIT), done, "Listing conversations"
        )

    @on(Sidebar.Open)
    def _sidebar_open(self, event: Sidebar.Open) -> None:
        self.open_conversation(event.conversation_id, event.seq)

    @on(Sidebar.Manage)
    def _sidebar_manage(self, event: Sidebar.Manage) -> None:
        {"rename": self.rename, "archive": self.archive, "delete": self.delete}[event.what](
            event.conversation_id
        )

    @on(ChatView.NeedOlder)
    def _need_older(self, event: ChatView.NeedOlder) -> None:
        cid = self.chat.conversation_id
        if cid is None:
            return

        def fetch() -> list[MessageInfo]:
            return self.agent.messages(
                cid, before_seq=event.before_seq, limit=PAGE + 1, newest_first=True
            )

        async def show(found: list[MessageInfo]) -> None:
            if self.chat.conversation_id == cid:
                await self.chat.prepend(list(reversed(found[:PAGE])), has_older=len(found) > PAGE)

        self.run_db(fetch, show, "Loading messages")

    @on(ChatView.NeedNewer)
    def _need_newer(self, event: ChatView.NeedNewer) -> None:
        cid = self.chat.conversation_id
        if cid is None:
            return

        def fetch() -> list[MessageInfo]:
            return self.agent.messages(cid, after_seq=event.after_seq, limit=PAGE + 1)

        async def show(found: list[MessageInfo]) -> None:
            if self.chat.conversation_id == cid:
                await self.chat.extend(found[:PAGE], has_newer=len(found) > PAGE)

        self.run_db(fetch, show, "Loading messages")

    # --- search ---------------------------------------------------------------------------

    @on(Sidebar.Search)
    def _search(self, event: Sidebar.Search) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        if event.query and self.rapp.agent is not None:
            query = event.query
            self._search_timer = self.set_timer(0.2, lambda: self.run_search(query))

    @work(thread=True, exclusive=True, group="search")
    def run_search(self, query: str) -> None:
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

    def action_search(self) -> None:
        self.sidebar.focus_search()

    # --- sending and streaming ---------------------------------------------------------

    @on(Composer.Submitted)
    def _submitted(self, event: Composer.Submitted) -> None:
        text = event.text
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

    def _send_while_loading(self, text: str) -> None:
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

    async def _answer_waiting(self) -> None:
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

    def _after_create(self, cid: int, text: str) -> None:
        def opened(info: ConversationInfo) -> None:
            self.conversation = info
            self.sub_title = conversation_title(info)
            self.chat.conversation_id = info.id
            self.run_worker(self._send(info.id, text), group="send")

        self.run_db(lambda: self.agent.get_conversation(cid), opened, "New conversation")

    async def _send(self, cid: int, text: str | None) -> None:
        """Show the message and a reply placeholder, then generate in a thread worker."""
        if self.chat.has_newer:  # opened mid-way (a search hit): show the newest page first
            await self.load_conversation(cid, None).wait()
        user_view = None
        if text is not None:
            user_view = await self.chat.add_message(MessageData(None, None, "user", text))
        reply_view = await self.chat.add_message(MessageData(None, None, "assistant", ""))
        self._stream = None
        self.generate(cid, text, user_view, reply_view)

    @work(thread=True, exclusive=True, group="generate")
    def generate(
        self,
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

    async def _append(self, view: MessageView, text: str) -> None:
        if view.is_attached:
            await view.append_text(text)  # an anchored chat view follows the growing reply

    async def _turn_refused(
        self,
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
        self,
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

    def action_stop(self) -> None:
        """Stop the reply (or composition) being generated; what was written is stored, marked."""
        stream = self._stream
        if stream is not None:
            stream.cancel()
        self.stop_composition()

    def action_regenerate(self) -> None:
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

    # --- the budget bar and the preview ------------------------------------------------

    @on(Composer.Changed)
    def _composer_changed(self) -> None:
        self.inspect_target = None  # typing: the inspector follows the next prompt again
        self.schedule_preview()

    def schedule_preview(self, now: bool = False) -> None:
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
    def preview(self, cid: int, text: str) -> None:
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
        self, cid: int, text: str, plan: PromptPlan, chain: list[SummaryInfo]
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
    def inspector_visible(self) -> bool:
        return not self.inspector.has_class("-hidden")

    def action_toggle_inspector(self) -> None:
        self._show_inspector(not self.inspector_visible)
        if self.inspector_visible:
            self.refresh_inspector()

    def _show_inspector(self, show: bool) -> None:
        """Show or hide the inspector; on a narrow terminal it borrows the sidebar's room."""
        self.inspector.set_class(not show, "-hidden")
        if show and self.size.width < WIDE and not self.sidebar.has_class("-hidden"):
            self.sidebar.add_class("-hidden")
            self._sidebar_lent = True
        elif not show and self._sidebar_lent:
            self.sidebar.remove_class("-hidden")
            self._sidebar_lent = False

    def refresh_inspector(self) -> None:
        if self.inspect_target is not None:
            self.load_trace(self.inspect_target)
        elif self.conversation is not None and self.model_ready:
            self.schedule_preview(now=True)
        else:
            self.run_worker(self.inspector.show_note("Nothing to inspect yet."))

    @on(ChatView.Selected)
    def _selected(self, event: ChatView.Selected) -> None:
        view = event.view
        if view is not None and view.data.role == "assistant" and view.data.id is not None:
            self.inspect_target = view.data.id
            if self.inspector_visible:
                self.load_trace(view.data.id)

    @work(thread=True, exclusive=True, group="trace")
    def load_trace(self, message_id: int) -> None:
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

    @on(Inspector.Jump)
    def _jump(self, event: Inspector.Jump) -> None:
        if self.conversation is not None:
            self.open_conversation(self.conversation.id, event.seq)
