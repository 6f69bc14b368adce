"""The main screen: sidebar, chat view, message box, budget bar and inspector, wired to the Agent.

The screen composes the widgets, holds the state they share and routes their
messages to the mixins that do the work, one concern each: `LoadingMixin`
(start-up, and messages typed while the model loads), `ConversationsMixin`
(opening and paging conversations, the sidebar's list and search),
`TurnsMixin` (sending and streaming turns), `PreviewMixin` (the budget preview
and the inspector), `ComposeMixin` (long-form composition) and `ActionsMixin`
(commands on messages and conversations). Every call to the Agent runs in a
thread worker (database reads and writes, previews, generation), handing
results back with `call_from_thread`. Widgets never touch the Agent; the screen
holds no dialogue logic of its own.

The `@on` message handlers stay on this class: Textual registers decorated
handlers only from the body of a widget or screen class, so on a plain mixin
they would never be called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from recursa.agent import ConversationInfo, PromptPlan, RecursaError, ReplyStream
from recursa.tui.commands import bindings
from recursa.tui.safe_text import one_line, terminal_safe
from recursa.tui.screens.actions import ActionsMixin
from recursa.tui.screens.compose import ComposeMixin
from recursa.tui.screens.conversations import PAGE, ConversationsMixin
from recursa.tui.screens.loading import LoadingMixin
from recursa.tui.screens.preview import PreviewMixin
from recursa.tui.screens.turns import TurnsMixin
from recursa.tui.widgets.budget import BudgetBar
from recursa.tui.widgets.chat import ChatView, MessageView
from recursa.tui.widgets.composer import Composer
from recursa.tui.widgets.inspector import Inspector
from recursa.tui.widgets.sidebar import Sidebar
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Label, ProgressBar

if TYPE_CHECKING:
    from recursa.agent import Agent
    from recursa.tui.app import RecursaApp
    from textual.notifications import SeverityLevel

__all__ = ["PAGE", "MainScreen"]

T = TypeVar("T")


class MainScreen(
    ComposeMixin,
    ActionsMixin,
    LoadingMixin,
    ConversationsMixin,
    TurnsMixin,
    PreviewMixin,
    Screen[None],
):
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

    # --- the widgets' messages ------------------------------------------------------------

    @on(Composer.Submitted)
    def _submitted(self, event: Composer.Submitted) -> None:
        self.submit(event.text)

    @on(Composer.Changed)
    def _composer_changed(self) -> None:
        self.inspect_target = None  # typing: the inspector follows the next prompt again
        self.schedule_preview()

    @on(Sidebar.Open)
    def _sidebar_open(self, event: Sidebar.Open) -> None:
        self.open_conversation(event.conversation_id, event.seq)

    @on(Sidebar.Manage)
    def _sidebar_manage(self, event: Sidebar.Manage) -> None:
        {"rename": self.rename, "archive": self.archive, "delete": self.delete}[event.what](
            event.conversation_id
        )

    @on(Sidebar.Search)
    def _search(self, event: Sidebar.Search) -> None:
        self.search_soon(event.query)

    @on(ChatView.NeedOlder)
    def _need_older(self, event: ChatView.NeedOlder) -> None:
        self.load_older(event.before_seq)

    @on(ChatView.NeedNewer)
    def _need_newer(self, event: ChatView.NeedNewer) -> None:
        self.load_newer(event.after_seq)

    @on(ChatView.Selected)
    def _selected(self, event: ChatView.Selected) -> None:
        self.inspect_reply(event.view)

    @on(Inspector.Jump)
    def _jump(self, event: Inspector.Jump) -> None:
        if self.conversation is not None:
            self.open_conversation(self.conversation.id, event.seq)
