"""Recognising a server's context-overflow refusal, and the window it states.

Servers word the refusal of a too-long prompt differently:

- llama.cpp's server: HTTP 400, ``{"error": {"type": "exceed_context_size_error",
  "message": "request (5406 tokens) exceeds the available context size (4096 tokens),
  try increasing it", "n_prompt_tokens": 5406, "n_ctx": 4096}}``;
- llama-cpp-python: ``Requested tokens (5406) exceed context window of 4096``, or
  (reformatted by its server) the OpenAI wording below, with "(5400 in the
  messages, ...)" for a chat and "(5400 in your prompt; ...)" for a completion;
- OpenAI and vLLM: ``This model's maximum context length is 4096 tokens. However,
  you requested 5406 tokens ...`` (code ``context_length_exceeded``), or vLLM's
  ``... longer than the maximum model length of 4096``;
- a proxy in front of any of them: HTTP 413 (request entity too large).

`overflow_from_error` turns such a body (or message) into an `Overflow` with
the window and prompt length it names, or None when it is some other error;
`overflow_error` words it for the person, with the setting that fixes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from recursa.agent.errors import ContextOverflowError

# Each pattern's first group is the context window the server states.
_WINDOW_PATTERNS = (
    re.compile(r"exceeds? (?:the )?context window of (\d+)", re.IGNORECASE),
    re.compile(r"maximum context length is (\d+)", re.IGNORECASE),
    re.compile(r"available context size \((\d+) tokens?\)", re.IGNORECASE),
    re.compile(r"maximum model length (?:of |is )?(\d+)", re.IGNORECASE),
    re.compile(r"context (?:length|window|size) (?:of|is) (\d+)", re.IGNORECASE),
)
# Each pattern's first group is the prompt's length by the server's count.
_PROMPT_PATTERNS = (
    re.compile(r"Requested tokens \((\d+)\)", re.IGNORECASE),
    re.compile(r"request \((\d+) tokens?\)", re.IGNORECASE),
    re.compile(r"\((\d+) in the messages", re.IGNORECASE),
    re.compile(r"\((\d+) in your prompt", re.IGNORECASE),
    re.compile(r"your messages resulted in (\d+) tokens", re.IGNORECASE),
    re.compile(r"has (\d+) input tokens", re.IGNORECASE),
    re.compile(r"prompt \(length (\d+)\)", re.IGNORECASE),
)
# Words that mark an overflow even when no number comes with them.
_MARKERS = (
    "context_length_exceeded",
    "exceed_context_size",
    "context window",
    "context length",
    "context size",
    "maximum model length",
    "prompt is too long",
    "too many tokens",
)


@dataclass(frozen=True)
class Overflow:
    """A recognised refusal: the window and prompt length the server named, when it did."""

    window: int | None
    prompt_tokens: int | None
    said: str  # the server's own words, shortened


def overflow_from_error(status: int | None, content: bytes | str) -> Overflow | None:
    """The overflow a refusal describes, or None when it is not a context overflow.

    `status` is the HTTP status (None for an error event inside a stream).
    """
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    fields = _json_fields(text)
    window = _first_int(fields, ("n_ctx", "max_model_len", "context_window"))
    prompt = _first_int(fields, ("n_prompt_tokens", "prompt_tokens"))
    said = fields.get("message") or fields.get("detail")
    message = str(said) if isinstance(said, str) and said else text
    haystack = f"{message} {text}"
    if window is None:
        window = _search(_WINDOW_PATTERNS, haystack)
    if prompt is None:
        prompt = _search(_PROMPT_PATTERNS, haystack)
    lowered = haystack.lower()
    marked = any(marker in lowered for marker in _MARKERS)
    if status == 413 or window is not None or (marked and (prompt is not None or _refusal(status))):
        return Overflow(window=window, prompt_tokens=prompt, said=" ".join(message.split())[:300])
    return None


def overflow_error(
    overflow: Overflow, *, base_url: str, local_count: int, window_setting: int | None
) -> ContextOverflowError:
    """The error for a prompt of about `local_count` tokens that `base_url` refused.

    `window_setting` is the runtime.context_window a person set, if any: the fix
    then names it.
    """
    window = overflow.window
    prompt = overflow.prompt_tokens
    seen = f"{prompt} tokens by its count" if prompt else f"about {local_count} tokens"
    # The server's words often end without a full stop (llama.cpp's "try
    # increasing it"); what follows this message must not run into them.
    words = overflow.said.rstrip()
    said = f" It said: {words}{'' if words.endswith(('.', '!', '?')) else '.'}" if words else ""
    if window is None:
        head = (
            f"The server at {base_url} refused a prompt of {seen} as too long, "
            "without saying its context window."
        )
        fix = (
            "Set runtime.context_window (RECURSA_RUNTIME__CONTEXT_WINDOW) to the "
            "server's real window (vLLM --max-model-len, llama.cpp -c, Ollama num_ctx)."
        )
    else:
        head = (
            f"The server at {base_url} refused a prompt of {seen}: its context "
            f"window is {window} tokens."
        )
        if window_setting:
            fix = (
                f"runtime.context_window is set to {window_setting}; set it to {window} or "
                f"less (RECURSA_RUNTIME__CONTEXT_WINDOW={window}), or unset it to use "
                "the server's own."
            )
        else:
            fix = (
                f"recursa now budgets prompts for {window} tokens; to fix it yourself, set "
                f"runtime.context_window (RECURSA_RUNTIME__CONTEXT_WINDOW) to {window} or less."
            )
    return ContextOverflowError(f"{head} {fix}{said}", window=window, prompt_tokens=prompt)


def _refusal(status: int | None) -> bool:
    # A marker alone counts for a refused request (400/422) or an in-stream error,
    # never for a 5xx, where "context" may be about anything.
    return status is None or status in (400, 422)


def _json_fields(text: str) -> dict[str, Any]:
    """The error object's fields (flattened one level), or {} when the body is not JSON."""
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return {}
    if not isinstance(body, dict):
        return {}
    fields: dict[str, Any] = {}
    error = body.get("error")
    if isinstance(error, dict):
        fields.update(error)
    elif isinstance(error, str):
        fields["message"] = error
    for key in ("message", "detail", "n_ctx", "n_prompt_tokens", "code", "type"):
        if key in body and key not in fields:
            fields[key] = body[key]
    return fields


def _first_int(fields: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = fields.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _search(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return int(match.group(1))
    return None
