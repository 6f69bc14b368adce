"""Sending a chat request with retries: exponential backoff, Retry-After, cancellation.

`send_with_retries` POSTs a request and returns the response once its status
is below 400, its body unread. Connection errors and HTTP 408/429/5xx are
retried with exponential backoff (or after the Retry-After the server asks
for, up to `RuntimeOptions.max_retry_delay_s`); other 4xx fail at once, and a
refusal of the prompt as too long becomes the caller's overflow error. The
waits between attempts end early when the cancel token fires (`Cancelled`).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import Any

import httpx
from recursa.agent.errors import ContextOverflowError, ModelServerError
from recursa.agent.runtime.options import RuntimeOptions
from recursa.agent.runtime.overflow import Overflow, overflow_from_error
from recursa.agent.runtime.protocol import CancelToken

__all__ = [
    "CANCEL_POLL_S",
    "RETRYABLE_4XX",
    "Cancelled",
    "backoff",
    "retry_after",
    "send_with_retries",
    "sleep_unless_cancelled",
]

# 408 (the server timed out reading the request) and 429 (rate limited) are the
# only 4xx worth repeating; every other 4xx would fail again the same way.
RETRYABLE_4XX = frozenset({408, 429})

# How long a retry wait sleeps between checks of the cancel token.
CANCEL_POLL_S = 0.05

# (response, body, attempts, extra words) -> the error for an HTTP error status.
StatusError = Callable[[httpx.Response, bytes, int, str], ModelServerError]


class Cancelled(Exception):
    """Raised inside the runtime when the cancel token fires before a reply started."""


def send_with_retries(
    client: httpx.Client,
    url: str,
    payload: dict[str, Any],
    cancel: CancelToken,
    *,
    options: RuntimeOptions,
    headers: Callable[[], dict[str, str]],
    refused: Callable[[Overflow], ContextOverflowError],
    status_error: StatusError,
    transport_message: Callable[[httpx.TransportError, int], str],
) -> httpx.Response:
    """POST the request and return a response whose status is < 400, body unread.

    Retries connection errors and 429/5xx with exponential backoff (honouring
    Retry-After up to `max_retry_delay_s`); a refusal of the prompt as too long
    raises what `refused` makes of it; other errors raise ModelServerError.
    """
    attempt = 0
    dropped_stream_options = False
    while True:
        if cancel.cancelled:
            raise Cancelled
        delay: float | None
        try:
            request = client.build_request("POST", url, json=payload, headers=headers())
            response = client.send(request, stream=True)
        except (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
            if attempt >= options.max_retries:
                raise ModelServerError(transport_message(exc, attempt)) from exc
            delay = backoff(options, attempt)
        except httpx.TimeoutException as exc:
            # A read timeout waiting for the answer is not retried: the server
            # is alive but slow, and a resend would only add to its load.
            raise ModelServerError(transport_message(exc, attempt)) from exc
        else:
            if response.status_code < 400:
                return response
            body = response.read()
            response.close()
            if (
                response.status_code == 400
                and "stream_options" in payload
                and not dropped_stream_options
                and b"stream_options" in body
            ):
                # Some servers reject the field; retry once without usage in the stream.
                payload = {k: v for k, v in payload.items() if k != "stream_options"}
                dropped_stream_options = True
                continue
            if 400 <= response.status_code < 500:
                overflow = overflow_from_error(response.status_code, body)
                if overflow is not None:
                    raise refused(overflow)
            retryable = response.status_code >= 500 or response.status_code in RETRYABLE_4XX
            if not retryable or attempt >= options.max_retries:
                raise status_error(response, body, attempt + 1, "")
            delay = retry_after(response)
            if delay is None:
                delay = backoff(options, attempt)
            elif delay > options.max_retry_delay_s:
                raise status_error(
                    response,
                    body,
                    attempt + 1,
                    f" The server asked to retry after {delay:.0f} s; try again later.",
                )
        sleep_unless_cancelled(delay, cancel)
        attempt += 1


def backoff(options: RuntimeOptions, attempt: int) -> float:
    """The wait before retry number `attempt + 1`: doubling, capped at `max_retry_delay_s`."""
    return float(min(options.retry_backoff_s * (2**attempt), options.max_retry_delay_s))


def retry_after(response: httpx.Response) -> float | None:
    """The wait a Retry-After header asks for, in seconds (a number or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # an unparseable header falls back to our own backoff
    return max(0.0, when.timestamp() - time.time())


def sleep_unless_cancelled(delay: float, cancel: CancelToken) -> None:
    """Sleep `delay` seconds, raising `Cancelled` as soon as the token fires."""
    deadline = time.monotonic() + delay
    while (left := deadline - time.monotonic()) > 0:
        if cancel.cancelled:
            raise Cancelled
        time.sleep(min(left, CANCEL_POLL_S))
