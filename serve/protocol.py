"""OpenAI's chat-completions protocol: the request checked field by field, and the replies.

`parse_request` turns a request body into a `ChatRequest` or raises `APIError`
naming the offending field: recursa refuses what it cannot honour (tools,
n > 1, logprobs, ...) instead of ignoring it. `history_key` fingerprints the
history a client re-sends, which is how a plain OpenAI client that replays its
whole history stays on one stored conversation. The response builders write
OpenAI's JSON shapes (completion, stream chunk, usage, error).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "APIError",
    "ChatRequest",
    "HistoryMessage",
    "completion_body",
    "chunk_body",
    "error_body",
    "history_key",
    "parse_request",
]

# Fields recursa understands. Everything else is refused, by name.
_SUPPORTED = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "metadata",
    "user",
    "n",
    "logprobs",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "tool_choice",
    "parallel_tool_calls",
}
# OpenAI fields recursa knows but cannot honour, with what to do instead.
_UNSUPPORTED = {
    "tools": "recursa has no tool calling; send plain messages",
    "functions": "recursa has no function calling; send plain messages",
    "function_call": "recursa has no function calling; send plain messages",
    "top_logprobs": "recursa does not return log probabilities",
    "logit_bias": "recursa does not support logit_bias",
    "audio": "recursa generates text only",
    "modalities": "recursa generates text only",
    "prediction": "recursa does not support predicted outputs",
    "reasoning_effort": "recursa's models have no reasoning effort setting",
    "web_search_options": "recursa does not search the web",
    "service_tier": "recursa has no service tiers",
    "store": "recursa stores every conversation; leave store out",
    "verbosity": "recursa has no verbosity setting",
}
_ROLES = {"system", "developer", "user", "assistant"}


class APIError(Exception):
    """An error answered in OpenAI's format: {"error": {"message", "type", "param", "code"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type
        self.headers = dict(headers or {})


def error_body(message: str, *, type: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass(frozen=True)
class HistoryMessage:
    """One message of the history a client sent, as text (developer becomes system)."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """A checked chat-completions request."""

    model: str
    messages: list[HistoryMessage]
    stream: bool = False
    include_usage: bool = False
    conversation_id: int | None = None
    generation: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The new user message: the only one that is stored and planned."""
        return self.messages[-1].content

    @property
    def history(self) -> list[HistoryMessage]:
        """What the client re-sent before the new message."""
        return self.messages[:-1]


def parse_request(body: Any) -> ChatRequest:
    """Check a chat-completions body; APIError (400) names the first field that is wrong."""
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.")
    for name in body:
        if name in _UNSUPPORTED:
            raise APIError(
                400,
                f"'{name}' is not supported: {_UNSUPPORTED[name]}.",
                param=name,
                code="unsupported_parameter",
            )
        if name not in _SUPPORTED:
            raise APIError(
                400,
                f"Unrecognized request argument supplied: {name}.",
                param=name,
                code="unknown_parameter",
            )
    _refuse_unless(body, "n", lambda v: v in (None, 1), "recursa returns one choice; set n to 1")
    _refuse_unless(
        body, "logprobs", lambda v: v in (None, False), "recursa does not return log probabilities"
    )
    for name in ("presence_penalty", "frequency_penalty"):
        _refuse_unless(
            body,
            name,
            lambda v: v in (None, 0, 0.0),
            "recursa has no OpenAI-style penalties (its repetition_penalty is a setting)",
        )
    _refuse_unless(
        body,
        "response_format",
        lambda v: v is None or (isinstance(v, dict) and v.get("type") == "text"),
        "recursa generates plain text only (response_format type 'text')",
    )
    _refuse_unless(
        body, "tool_choice", lambda v: v in (None, "none"), "recursa has no tool calling"
    )
    _refuse_unless(
        body, "parallel_tool_calls", lambda v: v in (None, False), "recursa has no tool calling"
    )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise APIError(400, "'model' is required: a model id from GET /v1/models.", param="model")
    messages = _messages(body.get("messages"))
    stream = _typed(body, "stream", bool, False)
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise APIError(
                400, "'stream_options' is only allowed with stream: true.", param="stream_options"
            )
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise APIError(
                400,
                "'stream_options' supports only {'include_usage': bool}.",
                param="stream_options",
            )
        include_usage = _typed(options, "include_usage", bool, False, prefix="stream_options.")
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        conversation_id=_metadata_conversation(body.get("metadata")),
        generation=_generation(body),
    )


def _refuse_unless(body: Mapping[str, Any], name: str, ok: Any, why: str) -> None:
    if name in body and not ok(body[name]):
        raise APIError(
            400,
            f"'{name}' = {json.dumps(body[name])} is not supported: {why}.",
            param=name,
            code="unsupported_parameter",
        )


def _typed(
    body: Mapping[str, Any], name: str, kind: type, default: Any, *, prefix: str = ""
) -> Any:
    value = body.get(name)
    if value is None:
        return default
    # bool is an int in Python; a number field must not take true/false.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise APIError(
            400,
            f"'{prefix}{name}' must be a {kind.__name__}, not {json.dumps(value)}.",
            param=prefix + name,
        )
    return value


def _number(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise APIError(400, f"'{name}' must be a number, not {json.dumps(value)}.", param=name)
    return float(value)


def _messages(value: Any) -> list[HistoryMessage]:
    if not isinstance(value, list) or not value:
        raise APIError(400, "'messages' must be a non-empty list of messages.", param="messages")
    out: list[HistoryMessage] = []
    for index, item in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            raise APIError(400, f"'{where}' must be an object with role and content.", param=where)
        role = item.get("role")
        if role not in _ROLES:
            raise APIError(
                400,
                f"'{where}.role' = {json.dumps(role)} is not supported: use system, developer, "
                "user or assistant (recursa has no tool messages).",
                param=f"{where}.role",
            )
        extra = set(item) - {"role", "content", "name"}
        if extra:
            name = sorted(extra)[0]
            raise APIError(
                400,
                f"'{where}.{name}' is not supported (recursa has no tool calls).",
                param=f"{where}.{name}",
            )
        out.append(HistoryMessage("system" if role == "developer" else role, _content(item, where)))
    if out[-1].role != "user":
        raise APIError(400, "The last message must be the user's new message.", param="messages")
    return out


def _content(item: Mapping[str, Any], where: str) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise APIError(
                    400,
                    f"'{where}.content[{index}]' is not text: recursa reads text parts only.",
                    param=f"{where}.content",
                )
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise APIError(
        400,
        f"'{where}.content' must be a string or a list of text parts.",
        param=f"{where}.content",
    )


def _metadata_conversation(metadata: Any) -> int | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise APIError(400, "'metadata' must be an object of strings.", param="metadata")
    value = metadata.get("conversation_id")
    return None if value is None else parse_conversation_id(value, "metadata.conversation_id")


def parse_conversation_id(value: Any, param: str) -> int:
    """A conversation id from a header or metadata (a positive integer, maybe as a string)."""
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise APIError(
            400,
            f"'{param}' must be a conversation id (a positive integer), not {value!r}.",
            param=param,
        )
    return int(text)


def _generation(body: Mapping[str, Any]) -> dict[str, Any]:
    """The generation parameters the request sets, in recursa's names."""
    out: dict[str, Any] = {}
    temperature = _number(body, "temperature")
    if temperature is not None:
        if not 0 <= temperature <= 2:
            raise APIError(400, "'temperature' must be between 0 and 2.", param="temperature")
        out["temperature"] = float(temperature)
    top_p = _number(body, "top_p")
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise APIError(400, "'top_p' must be greater than 0 and at most 1.", param="top_p")
        out["top_p"] = float(top_p)
    for name in ("max_completion_tokens", "max_tokens"):
        value = _typed(body, name, int, None)
        if value is not None:
            if value < 1:
                raise APIError(400, f"'{name}' must be at least 1.", param=name)
            out.setdefault("max_new_tokens", value)
    seed = _typed(body, "seed", int, None)
    if seed is not None:
        out["seed"] = seed
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if (
            not isinstance(stops, list)
            or len(stops) > 4
            or not all(isinstance(s, str) and s for s in stops)
        ):
            raise APIError(
                400,
                "'stop' must be a non-empty string or a list of up to 4 of them.",
                param="stop",
            )
        out["stop"] = tuple(stops)
    return out


def history_key(messages: Sequence[HistoryMessage]) -> str:
    """The fingerprint of a history: SHA-256 of its roles and texts, in order."""
    canonical = json.dumps([[m.role, m.content] for m in messages], ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def finish_reason(usage_reason: str | None, status: str) -> str:
    """OpenAI's finish_reason for a stored reply."""
    if usage_reason == "length":
        return "length"
    return "stop" if status == "complete" else "length"


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(
    *,
    completion_id: str,
    model: str,
    text: str,
    finish: str,
    usage: dict[str, int],
    extra: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage,
        "recursa": extra,
    }


def chunk_body(
    *,
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    include_usage: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if include_usage:
        body["usage"] = usage
    if extra is not None:
        body["recursa"] = extra
    return body
