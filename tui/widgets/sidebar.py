"""The sidebar: full-text search and the conversation list (title, last activity, count).

The sidebar only shows what it is given (`show_conversations`, `show_results`)
and posts what the user asked for (`Open`, `Search`, `Manage`); the screen does
the work through the Agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from recursa.agent import ConversationInfo, SearchResult
from recursa.tui.commands import bindings
from recursa.tui.safe_text import one_line
from recursa.tui.widgets.chat import local_time
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label, ListItem, ListView


def conversation_title(info: ConversationInfo) -> str:
    """The title to show (stored text, so made terminal-safe on one line)."""
    return one_line(info.title) if info.title else f"Conversation {info.id}"


class ConversationItem(ListItem):
    """One conversation in the list."""

    DEFAULT_CSS = """
    ConversationItem { padding: 0 1; height: auto; }
    ConversationItem .meta { color: $text-muted; }
    ConversationItem.-current .title { text-style: bold; color: $accent; }
    """

    def __init__(self, info: ConversationInfo, *, current: bool) -> None:
        super().__init__(classes="-current" if current else "")
        self.info = info

    def compose(self) -> ComposeResult:
        info = self.info
        yield Label(
            Text(conversation_title(info), overflow="ellipsis", no_wrap=True), classes="title"
        )
        count = f"{info.message_count} message" + ("" if info.message_count == 1 else "s")
        when = local_time(info.updated_at)
        yield Label(Text(f"{when} · {count}"), classes="meta")


class ResultItem(ListItem):
    """One search hit: which conversation, which message, and the matching snippet."""

    DEFAULT_CSS = """
    ResultItem { padding: 0 1; height: auto; }
    ResultItem .meta { color: $text-muted; }
    """

    def __init__(self, hit: SearchResult, title: str) -> None:
        super().__init__()
        self.hit = hit
        self.title = title

    def compose(self) -> ComposeResult:
        hit = self.hit
        where = (
            f"{self.title} · #{hit.seq} {hit.role}"
            if hit.kind == "message"
            else (f"{self.title} · summary to #{hit.seq}")
        )
        yield Label(Text(where, overflow="ellipsis", no_wrap=True), classes="meta")
        snippet = one_line(" ".join(hit.snippet.split()))
        yield Label(Text(snippet[:160]))


class Sidebar(Vertical):
    """Search box, search results (while searching) and the conversation list."""

    DEFAULT_CSS = """
    Sidebar { width: 34; dock: left; border-right: vkey $panel; }
    Sidebar.-hidden { display: none; }
    Sidebar #search { margin: 0 0 1 0; }
    Sidebar ListView { height: 1fr; background: transparent; }
    Sidebar #results { display: none; }
    Sidebar.-searching #results { display: block; }
    Sidebar.-searching #conversations { display: none; }
    Sidebar .section { color: $text-muted; padding: 0 1; }
    """

    BINDINGS = bindings("sidebar")

    class Open(Message):
        """Open a conversation (at a given message when `seq` is set)."""

        def __init__(self, conversation_id: int, seq: int | None = None) -> None:
            super().__init__()
            self.conversation_id = conversation_id
            self.seq = seq

    class Search(Message):
        """The search text changed (empty: stop searching)."""

        def __init__(self, query: str) -> None:
            super().__init__()
            self.query = query

    class Manage(Message):
        """Rename, archive or delete the highlighted conversation."""

        def __init__(self, what: Literal["rename", "archive", "delete"], conversation_id: int):
            super().__init__()
            self.what = what
            self.conversation_id = conversation_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.current_id: int | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Search all conversations (Ctrl+F)", id="search")
        yield Label("Conversations", classes="section", id="list-title")
        yield ListView(id="conversations")
        yield ListView(id="results")

    # --- attributes down ----------------------------------------------------------------

    @property
    def conversation_list(self) -> ListView:
        return self.query_one("#conversations", ListView)

    @property
    def result_list(self) -> ListView:
        return self.query_one("#results", ListView)

    async def show_conversations(
        self, conversations: Sequence[ConversationInfo], current_id: int | None
    ) -> None:
        self.current_id = current_id
        lv = self.conversation_list
        await lv.clear()
        items = [ConversationItem(c, current=c.id == current_id) for c in conversations]
        await lv.extend(items)
        index = next((i for i, c in enumerate(conversations) if c.id == current_id), None)
        if index is not None:
            lv.index = index

    async def show_results(self, hits: Sequence[SearchResult], titles: dict[int, str]) -> None:
        lv = self.result_list
        await lv.clear()
        await lv.extend(ResultItem(h, titles.get(h.conversation_id, "?")) for h in hits)
        self.query_one("#list-title", Label).update(
            f"{len(hits)} result" + ("" if len(hits) == 1 else "s")
        )

    def focus_search(self) -> None:
        self.remove_class("-hidden")
        self.query_one("#search", Input).focus()

    # --- messages up ----------------------------------------------------------------------

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        query = event.value.strip()
        self.set_class(bool(query), "-searching")
        if not query:
            self.query_one("#list-title", Label).update("Conversations")
        self.post_message(self.Search(query))

    @on(Input.Submitted, "#search")
    def _search_submitted(self) -> None:
        if self.has_class("-searching") and self.result_list.children:
            self.result_list.focus()
            if self.result_list.index is None:
                self.result_list.index = 0

    @on(ListView.Selected, "#conversations")
    def _open(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, ConversationItem):
            self.post_message(self.Open(event.item.info.id))

    @on(ListView.Selected, "#results")
    def _open_result(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, ResultItem):
            hit = event.item.hit
            self.post_message(self.Open(hit.conversation_id, hit.seq))

    def _highlighted_id(self) -> int | None:
        item = self.conversation_list.highlighted_child
        return item.info.id if isinstance(item, ConversationItem) else None

    def _manage(self, what: Literal["rename", "archive", "delete"]) -> None:
        cid = self._highlighted_id()
        if cid is not None:
            self.post_message(self.Manage(what, cid))

    def action_sidebar_rename(self) -> None:
        self._manage("rename")

    def action_sidebar_archive(self) -> None:
        self._manage("archive")

    def action_sidebar_delete(self) -> None:
        self._manage("delete")
