"""The chat view: a scrolling list of message widgets, paged from the store, with a cursor.

Only a page of messages is mounted at a time; scrolling to the top (or moving
the cursor above the first message) asks for the page before it, scrolling to
the bottom of a conversation opened mid-way asks for the page after it. The
view does no I/O itself: it posts `NeedOlder` / `NeedNewer` and its screen
fetches the page in a worker and hands it back with `prepend` / `extend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from recursa.agent import MessageInfo
from recursa.tui.commands import bindings
from recursa.tui.safe_text import terminal_safe
from rich.text import Text
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream


def local_time(when: datetime) -> str:
    """A stored (UTC) timestamp in the user's local time zone, to the minute."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}


@dataclass(frozen=True)
class MessageData:
    """What a message widget shows; `id` is None while a reply is still streaming."""

    id: int | None
    seq: int | None
    role: str
    content: str
    status: str = "complete"
    pinned: bool = False
    rating: int | None = None
    created: str = ""
    superseded: bool = False
    waiting: bool = False  # stored, to be answered once the model is loaded

    @classmethod
    def from_info(cls, m: MessageInfo) -> MessageData:
        return cls(
            id=m.id,
            seq=m.seq,
            role=m.role,
            content=m.content,
            status=m.status,
            pinned=m.pinned,
            rating=m.rating,
            created=local_time(m.created_at),
            superseded=m.superseded,
        )


class MessageView(Widget):
    """One message: a header line (who, when, marks) and its body (Markdown for replies)."""

    DEFAULT_CSS = """
    MessageView {
        height: auto;
        padding: 0 1;
        margin: 0 0 1 0;
        border-left: tall $panel;
    }
    MessageView.-user { border-left: tall $secondary; background: $boost; }
    MessageView.-assistant { border-left: tall $primary; }
    MessageView.-pinned { border-left: tall $warning; }
    MessageView.-cursor { background: $primary 15%; }
    MessageView.-match { background: $warning 20%; }
    MessageView .header { color: $text-muted; height: 1; }
    MessageView Markdown { margin: 0; padding: 0; }
    MessageView Markdown > *:last-child { margin-bottom: 0; }
    MessageView .plain { height: auto; }
    MessageView.-superseded { opacity: 60%; }
    """

    def __init__(self, data: MessageData) -> None:
        super().__init__(classes=f"-{data.role}")
        self.data = data
        self._header = Static("", classes="header")
        self._body: Markdown | Static
        if data.role == "assistant":
            self._body = Markdown(terminal_safe(data.content))
        else:
            self._body = Static(Text(terminal_safe(data.content)), classes="plain")
        self._stream: MarkdownStream | None = None

    def compose(self):  # type: ignore[no-untyped-def]
        yield self._header
        yield self._body

    def on_mount(self) -> None:
        self._refresh_header()

    @property
    def text(self) -> str:
        return self.data.content

    def _refresh_header(self) -> None:
        d = self.data
        parts = [ROLE_TITLES.get(d.role, d.role)]
        if d.seq is not None:
            parts.append(f"#{d.seq}")
        if d.created:
            parts.append(d.created)
        marks = []
        if d.id is None:
            marks.append("streaming…")
        if d.waiting:
            marks.append("⏳ waiting for the model")
        if d.status == "interrupted":
            marks.append("■ stopped")
        elif d.status == "error":
            marks.append("✗ failed")
        if d.pinned:
            marks.append("📌 pinned")
        if d.rating is not None:
            marks.append("👍" if d.rating > 0 else "👎")
        if d.superseded:
            marks.append("superseded")
        line = " · ".join(parts)
        if marks:
            line += "  " + "  ".join(marks)
        self._header.update(Text(line))
        self.set_class(d.pinned, "-pinned")
        self.set_class(d.superseded, "-superseded")

    def update_data(self, data: MessageData) -> None:
        """Show new figures for this message (pinned, rating, final status)."""
        changed_text = data.content != self.data.content
        self.data = data
        self._refresh_header()
        if changed_text:
            if isinstance(self._body, Markdown):
                self._body.update(terminal_safe(data.content))
            else:
                self._body.update(Text(terminal_safe(data.content)))

    async def append_text(self, fragment: str) -> None:
        """Add streamed text to the reply (Markdown re-renders only its last block)."""
        self.data = replace(self.data, content=self.data.content + fragment)
        if isinstance(self._body, Markdown):
            if self._stream is None:
                self._stream = Markdown.get_stream(self._body)
            await self._stream.write(terminal_safe(fragment))
        else:
            self._body.update(Text(terminal_safe(self.data.content)))

    async def finish_stream(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None


class ChatView(VerticalScroll, can_focus=True):
    """The messages of one conversation, a page at a time, with a selectable cursor."""

    BINDINGS = [
        *bindings("messages", "screen"),
    ]

    DEFAULT_CSS = """
    ChatView { padding: 0 1; }
    ChatView:focus { border-left: outer $primary; }
    ChatView #empty { color: $text-muted; padding: 2 4; }
    """

    cursor: reactive[int | None] = reactive(None)
    """Index of the selected message among the mounted ones (None: none selected)."""

    class NeedOlder(Message):
        """The user reached the top: fetch the page before `before_seq`."""

        def __init__(self, before_seq: int) -> None:
            super().__init__()
            self.before_seq = before_seq

    class NeedNewer(Message):
        """The user reached the bottom of a partial view: fetch the page after `after_seq`."""

        def __init__(self, after_seq: int) -> None:
            super().__init__()
            self.after_seq = after_seq

    class Selected(Message):
        """The cursor moved to a message."""

        def __init__(self, view: MessageView | None) -> None:
            super().__init__()
            self.view = view

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.conversation_id: int | None = None
        self.has_older = False
        self.has_newer = False
        self._loading = False

    # --- contents ---------------------------------------------------------------------

    @property
    def message_views(self) -> list[MessageView]:
        return list(self.query_children(MessageView))

    def show_empty(self, text: str) -> None:
        """Replace the contents with a hint (first run, nothing open)."""
        self.conversation_id = None
        self.has_older = self.has_newer = False
        self.cursor = None
        self.remove_children()
        self.mount(Static(text, id="empty"))

    async def show_page(
        self,
        conversation_id: int,
        messages: Sequence[MessageInfo],
        *,
        has_older: bool,
        has_newer: bool,
        focus_seq: int | None = None,
    ) -> None:
        """Replace the contents with one page of a conversation."""
        self.conversation_id = conversation_id
        self.has_older, self.has_newer = has_older, has_newer
        self.cursor = None
        await self.remove_children()
        if not messages:
            await self.mount(Static("No messages yet. Type below and press Enter.", id="empty"))
            return
        views = [MessageView(MessageData.from_info(m)) for m in messages]
        await self.mount_all(views)
        self._loading = False
        if focus_seq is None:
            self.anchor()  # stay at the newest message as replies grow, until the user scrolls
            return
        self.anchor(False)
        target = next((i for i, v in enumerate(views) if v.data.seq == focus_seq), None)
        if target is None:
            target = max(0, min(len(views) - 1, len(views) // 2))
        views[target].add_class("-match")
        self.cursor = target
        self.call_after_refresh(self._scroll_to_view, views[target], True)

    async def prepend(self, messages: Sequence[MessageInfo], *, has_older: bool) -> None:
        """Mount an older page above the current one, keeping what is on screen in place."""
        self.has_older = has_older
        self._loading = False
        views = self.message_views
        if not messages or not views:
            return
        new = [MessageView(MessageData.from_info(m)) for m in messages]
        anchor = views[0]
        await self.mount_all(new, before=anchor)
        if self.cursor is not None:
            self.cursor += len(new)
        self.call_after_refresh(self._scroll_to_view, anchor, False)

    async def extend(self, messages: Sequence[MessageInfo], *, has_newer: bool) -> None:
        """Mount a newer page below the current one."""
        self.has_newer = has_newer
        self._loading = False
        if messages:
            await self.mount_all([MessageView(MessageData.from_info(m)) for m in messages])

    async def add_message(self, data: MessageData) -> MessageView:
        """Append one message (a sent message, or a reply about to stream)."""
        for hint in self.query("#empty"):
            await hint.remove()
        view = MessageView(data)
        await self.mount(view)
        if data.role == "user":
            self.cursor = None
            self.anchor()  # the user just sent: follow the reply
        return view

    def view_for(self, message_id: int) -> MessageView | None:
        return next((v for v in self.message_views if v.data.id == message_id), None)

    @property
    def oldest_seq(self) -> int | None:
        seqs = [v.data.seq for v in self.message_views if v.data.seq is not None]
        return min(seqs) if seqs else None

    @property
    def newest_seq(self) -> int | None:
        seqs = [v.data.seq for v in self.message_views if v.data.seq is not None]
        return max(seqs) if seqs else None

    # --- selection --------------------------------------------------------------------

    @property
    def selected(self) -> MessageView | None:
        views = self.message_views
        if self.cursor is None or not views:
            return None
        return views[min(self.cursor, len(views) - 1)]

    def watch_cursor(self, old: int | None, new: int | None) -> None:
        views = self.message_views
        for i, view in enumerate(views):
            view.set_class(i == new, "-cursor")
        if new is not None and 0 <= new < len(views):
            self._scroll_to_view(views[new], False)
            self.post_message(self.Selected(views[new]))

    def _scroll_to_view(self, view: Widget, center: bool) -> None:
        if view.is_mounted:
            self.scroll_to_widget(view, animate=False, center=center)

    def key_up(self) -> None:
        views = self.message_views
        if not views:
            return
        if self.cursor is None:
            self.cursor = len(views) - 1
        elif self.cursor > 0:
            self.cursor -= 1
        else:
            self._ask_older()

    def key_down(self) -> None:
        views = self.message_views
        if not views:
            return
        if self.cursor is None:
            self.cursor = len(views) - 1
        elif self.cursor < len(views) - 1:
            self.cursor += 1
        else:
            self._ask_newer()

    def on_focus(self) -> None:
        if self.cursor is None and self.message_views:
            self.cursor = len(self.message_views) - 1

    # --- paging on scroll ----------------------------------------------------------------

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new <= 0 and old > 0:
            self._ask_older()
        elif self.max_scroll_y > 0 and new >= self.max_scroll_y and old < new:
            self._ask_newer()

    def on_mouse_scroll_up(self) -> None:
        # At the very top a wheel-up does not change scroll_y; ask for more anyway.
        if self.scroll_y <= 0:
            self._ask_older()

    def _ask_older(self) -> None:
        oldest = self.oldest_seq
        if self.has_older and not self._loading and oldest is not None:
            self._loading = True
            self.post_message(self.NeedOlder(oldest))

    def _ask_newer(self) -> None:
        newest = self.newest_seq
        if self.has_newer and not self._loading and newest is not None:
            self._loading = True
            self.post_message(self.NeedNewer(newest))
