"""What `OpenAIRuntime` says when a request fails: one message per failure, with its fix.

`transport_message` words a connection that failed or timed out,
`status_error` an HTTP error status (401/403 name the API-key variable, a 404
tells a wrong base URL from an unknown model, 429 and 5xx say how often it was
tried), and `broken_stream_error` a reply cut mid-way. `error_text` and
`error_text_from_bytes` pull the server's own words out of an OpenAI-style
error body. Nothing here sends a request: the list of models a 404 suggests
comes from the caller (`models_hint`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import httpx
from recursa.agent.errors import ModelServerError

__all__ = [
    "broken_stream_error",
    "error_text",
    "error_text_from_bytes",
    "mentions_model",
    "status_error",
    "transport_message",
]


def transport_message(
    base_url: str, timeout_s: float, exc: httpx.TransportError, retries: int = 0
) -> str:
    """The message for a request that never got an answer (`retries` made before giving up)."""
    tried = f" (tried {retries + 1} times)" if retries else ""
    if isinstance(exc, httpx.ConnectTimeout):
        return (
            f"Timed out connecting to {base_url}{tried}. Is the server running at "
            f"{base_url}, and is the host reachable from here?"
        )
    if isinstance(exc, httpx.ConnectError):
        return (
            f"Cannot connect to {base_url}{tried}: {exc}. Is the server running at "
            f"{base_url}? Start it, or fix the URL in the model spec "
            "(openai:<model>@<base-url>)."
        )
    if isinstance(exc, httpx.TimeoutException):
        return (
            f"The server at {base_url} did not answer within "
            f"{timeout_s:g} s. It may be overloaded; raise the timeout "
            "(RuntimeOptions.timeout_s) or check the server."
        )
    return (
        f"The connection to {base_url} failed{tried} ({type(exc).__name__}: {exc}). "
        f"Is the server running at {base_url}?"
    )


def status_error(
    response: httpx.Response,
    content: bytes,
    *,
    base_url: str,
    model: str,
    api_key_env: str,
    models_hint: Callable[[], str],
    endpoint: str = "/chat/completions",
    attempts: int = 1,
    extra: str = "",
) -> ModelServerError:
    """The error for an HTTP error status from `endpoint` (`content` is the body it sent)."""
    status = response.status_code
    detail = error_text_from_bytes(content)
    said = f" The server said: {detail}" if detail else ""
    tried = f" (after {attempts} attempts)" if attempts > 1 else ""
    url = f"{base_url}{endpoint}"
    if status in (401, 403):
        if os.environ.get(api_key_env):
            fix = f"Check that the key in the environment variable {api_key_env} is valid for it."
        else:
            fix = f"Set the environment variable {api_key_env} to your API key."
        return ModelServerError(
            f"The server at {base_url} refused the request (HTTP {status}: "
            f"not authorized). {fix}{said}"
        )
    if status == 404:
        if endpoint == "/chat/completions" and mentions_model(content):
            return ModelServerError(
                f"The server at {base_url} has no model {model!r} (HTTP 404).{said} {models_hint()}"
            )
        return ModelServerError(
            f"No OpenAI-compatible endpoint at {url} (HTTP 404). Check the base URL in "
            "the model spec: it is the API root, which usually ends in /v1, e.g. "
            f"openai:{model}@http://127.0.0.1:8000/v1.{said}"
        )
    if status == 429:
        return ModelServerError(
            f"The server at {base_url} is rate limiting requests (HTTP 429){tried}."
            f"{extra or ' Wait and try again, or lower the request rate.'}{said}"
        )
    if status >= 500:
        return ModelServerError(
            f"The server at {base_url} failed (HTTP {status}){tried}.{extra}{said} "
            "Check the server's logs."
        )
    return ModelServerError(
        f"The server at {base_url} rejected the request (HTTP {status}).{said}{extra}"
    )


def broken_stream_error(
    base_url: str, timeout_s: float, exc: httpx.TransportError, received: int
) -> ModelServerError:
    """The error for a reply whose connection broke after `received` characters."""
    if isinstance(exc, httpx.TimeoutException):
        return ModelServerError(
            f"The server at {base_url} stopped sending mid-reply for "
            f"{timeout_s:g} s (after {received} characters). "
            "Check the server, or raise the timeout (RuntimeOptions.timeout_s)."
        )
    return ModelServerError(
        f"The connection to {base_url} broke mid-reply after {received} "
        f"characters ({type(exc).__name__}: {exc}). The partial reply was not kept "
        "as complete; try again."
    )


def error_text(body: Any) -> str:
    """The human message inside an OpenAI-style error body ({"error": {"message": ...}})."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                if error.get(key):
                    return str(error[key])[:500]
        elif isinstance(error, str):
            return error[:500]
        if isinstance(body.get("detail"), str):
            return str(body["detail"])[:500]
    return ""


def error_text_from_bytes(content: bytes) -> str:
    """The server's words in an error body, JSON or plain text ('' for an HTML page)."""
    try:
        return error_text(json.loads(content))
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = content.decode("utf-8", "replace").strip()
        # An HTML error page says nothing useful in one line.
        return "" if text.startswith("<") else text[:300]


def mentions_model(content: bytes) -> bool:
    """Whether a 404 body blames the model (vLLM, Ollama, OpenAI all say so) rather than the URL."""
    try:
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("code") == "model_not_found":
        return True
    return "model" in error_text(body).lower()
