"""A server-sent events (SSE) parser: lines of a text/event-stream in, events out.

It follows the WHATWG event-stream rules that OpenAI-compatible servers rely
on: `data:` lines accumulate (joined by newlines) until a blank line
dispatches the event, `event:` names it, lines starting with `:` are comments
(keep-alives), and an event that was never terminated by a blank line when the
stream ends is dropped, because a stream cut in the middle of an event must not
deliver half of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its type ('message' unless named) and its data."""

    event: str
    data: str


def iter_sse_events(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Parse lines (without their line endings) into events."""
    data: list[str] = []
    event = ""
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SSEEvent(event or "message", "\n".join(data))
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        # The spec strips exactly one space after the colon.
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
        # "id" and "retry" matter only to browsers that reconnect; unknown fields are ignored.
