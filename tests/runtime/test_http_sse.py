"""The SSE parser: event framing as OpenAI-compatible servers send it."""

from __future__ import annotations

from recursa.agent.runtime.sse import SSEEvent, iter_sse_events


def parse(text: str) -> list[SSEEvent]:
    return list(iter_sse_events(text.splitlines()))


def test_blank_line_dispatches_each_event() -> None:
    """Each blank-line-terminated block is one 'message' event."""
    assert parse('data: {"a": 1}\n\ndata: [DONE]\n\n') == [
        SSEEvent("message", '{"a": 1}'),
        SSEEvent("message", "[DONE]"),
    ]


def test_comments_and_unknown_fields_are_ignored() -> None:
    """Keep-alive comments, id and retry lines carry no data."""
    assert parse(": ping\nid: 7\nretry: 100\ndata: x\n\n: ping\n\n") == [SSEEvent("message", "x")]


def test_multi_line_data_is_joined_with_newlines() -> None:
    """Several data lines in one event are one payload joined by newlines."""
    assert parse("data: one\ndata: two\n\n") == [SSEEvent("message", "one\ntwo")]


def test_event_name_and_missing_space_after_colon() -> None:
    """'event:' names the event; the space after the colon is optional."""
    assert parse("event: error\ndata:{}\n\n") == [SSEEvent("error", "{}")]


def test_crlf_line_endings() -> None:
    """CRLF-terminated lines parse like LF ones."""
    lines = ["data: a\r\n", "\r\n"]
    assert list(iter_sse_events(lines)) == [SSEEvent("message", "a")]


def test_unterminated_last_event_is_dropped() -> None:
    """An event cut off before its blank line is never delivered half-received."""
    assert parse('data: {"a": 1}\n\ndata: {"b":') == [SSEEvent("message", '{"a": 1}')]
