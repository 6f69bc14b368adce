"""Reading an OpenAI-compatible server's replies: JSON bodies, and chat streams over SSE.

`json_body` and `parse_message` read a whole (non-streamed) reply;
`iter_chunks` turns a `text/event-stream` response into its JSON chunks (an
error event becomes an error, a refusal of the prompt as too long the caller's
overflow error), and `read_deltas` yields the text of those chunks while
`StreamProgress` keeps what arrived: the parts, the time to the first token,
the finish reason and the usage the server reported. `close_on_cancel` shuts a
response's socket down when the cancel token fires, so that a read blocked on
a slow server ends at once.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from recursa.agent.errors import ContextOverflowError, ModelServerError
from recursa.agent.runtime.http_errors import error_text
from recursa.agent.runtime.http_retry import CANCEL_POLL_S
from recursa.agent.runtime.overflow import Overflow, overflow_from_error
from recursa.agent.runtime.protocol import CancelToken, FinishReason
from recursa.agent.runtime.sse import iter_sse_events

__all__ = [
    "FINISH_REASONS",
    "StreamProgress",
    "close_on_cancel",
    "iter_chunks",
    "json_body",
    "parse_message",
    "read_deltas",
]

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "stop",
    "tool_calls": "stop",
    "function_call": "stop",
}


def json_body(response: httpx.Response, content: bytes) -> dict[str, Any]:
    """The reply's JSON object; a body that is not one says the URL is likely wrong."""
    try:
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        ctype = response.headers.get("content-type", "?")
        raise ModelServerError(
            f"{response.request.url} answered with {ctype}, not JSON: it does not look "
            "like an OpenAI-compatible API. Check the base URL (it usually ends in /v1)."
        ) from exc
    if not isinstance(body, dict):
        raise ModelServerError(
            f"{response.request.url} answered with JSON that is not an object; "
            "check that it is an OpenAI-compatible API."
        )
    return body


def parse_message(body: dict[str, Any], base_url: str) -> tuple[str, FinishReason]:
    """The text and finish reason of a whole chat-completion reply."""
    try:
        choice = body["choices"][0]
        content = choice["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ModelServerError(
            f"The reply from {base_url} has no choices[0].message: "
            f"{json.dumps(body)[:300]}. Check that it is an OpenAI-compatible server."
        ) from exc
    finish = FINISH_REASONS.get(str(choice.get("finish_reason") or "stop"), "stop")
    return str(content), finish


def iter_chunks(
    response: httpx.Response,
    base_url: str,
    refused: Callable[[Overflow], ContextOverflowError],
) -> Iterator[dict[str, Any] | None]:
    """The JSON chunks of an SSE chat stream; None marks `[DONE]`."""
    for event in iter_sse_events(response.iter_lines()):
        data = event.data.strip()
        if data == "[DONE]":
            yield None
            return
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ModelServerError(
                f"The server at {base_url} sent a malformed stream event "
                f"({exc.msg}): {data[:200]!r}. It may not be OpenAI-compatible; "
                "check the base URL."
            ) from exc
        if not isinstance(chunk, dict):
            raise ModelServerError(
                f"The server at {base_url} sent a stream event that is not a JSON "
                f"object: {data[:200]!r}. Check that it is an OpenAI-compatible server."
            )
        if event.event == "error" or "error" in chunk:
            overflow = overflow_from_error(None, data)
            if overflow is not None:
                raise refused(overflow)
            raise ModelServerError(
                f"The server at {base_url} reported an error mid-stream: "
                f"{error_text(chunk) or data[:300]}"
            )
        yield chunk


@dataclass
class StreamProgress:
    """What a streamed reply has delivered so far (times in seconds from `start`)."""

    start: float
    parts: list[str] = field(default_factory=list)
    first: float | None = None
    finish: FinishReason | None = None
    server_usage: dict[str, Any] | None = None
    # True once `[DONE]` arrived: the stream ended as the server meant it to.
    done: bool = False


def read_deltas(
    chunks: Iterator[dict[str, Any] | None], cancel: CancelToken, progress: StreamProgress
) -> Iterator[str]:
    """Yield the text of each chunk of choice 0, keeping the rest in `progress`."""
    for chunk in chunks:
        if cancel.cancelled:
            progress.finish = "cancelled"
            break
        if chunk is None:
            progress.done = True
            break
        if isinstance(chunk.get("usage"), dict):
            progress.server_usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if content:
                if progress.first is None:
                    progress.first = time.perf_counter() - progress.start
                progress.parts.append(content)
                yield content
            if choice.get("finish_reason"):
                progress.finish = FINISH_REASONS.get(str(choice["finish_reason"]), "stop")
        if cancel.cancelled:
            progress.finish = "cancelled"
            break


def close_on_cancel(
    response: httpx.Response, cancel: CancelToken, finished: threading.Event
) -> None:
    """Shut the response's socket down as soon as `cancel` fires.

    The reading thread may be blocked waiting for the server's next bytes (a long
    prefill, a stalled server); closing a socket does not wake a blocked read, but
    shutting it down does, so a cancel takes effect at once instead of at the
    next token.
    """
    while not finished.wait(CANCEL_POLL_S):
        if cancel.cancelled:
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                # OSError: the reader finished and closed it at the same moment.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return
