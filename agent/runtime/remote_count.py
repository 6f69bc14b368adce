"""Token counters for models behind a server: the server's own tokenizer, or tiktoken with a margin.

`ServerCounter` asks the server (vLLM's and llama.cpp's ``/tokenize``, llama.cpp's
``/apply-template``, llama-cpp-python's ``/extras/tokenize``), caches every answer
in memory and counts many prompts at once over a few parallel requests
(`count_batch`), so a planner that needs hundreds of message costs waits for a
handful of round trips, not hundreds in a row.

`MarginCounter` is tiktoken's ``cl100k_base`` scaled by a factor that covers its
undercount of the served model's tokenizer; the factor is measured from the
prompt lengths the server reports, and is part of the tokenizer id, so counts
cached under one factor are never read under another.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from recursa.agent.errors import ModelServerError
from recursa.agent.runtime.discovery import ServerFacts, root_url
from recursa.memory.tokens import TiktokenCounter

# Before any measurement: cl100k undercounts small-vocabulary tokenizers by up to
# about this much (SmolLM2's by about 9% on English text).
DEFAULT_SCALE = 1.2
# Framing assumed per message and for the reply's priming until it is measured.
DEFAULT_FRAMING = (8, 8)
# Assumed for a chat without a system message until measured: templates that add a
# default system prompt then add about this much (SmolLM2's adds 21 tokens).
DEFAULT_IMPLICIT_SYSTEM = 32
# Parallel tokenize requests in a batch; servers queue the rest.
BATCH_WORKERS = 4
_CACHE_SIZE = 8192

Headers = Callable[[], dict[str, str]]


class MarginCounter:
    """tiktoken counts times `scale` (rounded up): never fewer tokens than the server sees."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = max(1.0, round(scale, 2))
        self._base = TiktokenCounter()

    @property
    def tokenizer_id(self) -> str:
        base = self._base.tokenizer_id
        return base if self.scale == 1.0 else f"{base}*{self.scale:.2f}"

    def raw_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """The unscaled tiktoken count (what the margin is measured against)."""
        return self._base.count_messages(messages)

    def count_text(self, text: str) -> int:
        return math.ceil(self._base.count_text(text) * self.scale)

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        return math.ceil(self._base.count_messages(messages) * self.scale)

    def count_batch(self, prompts: Sequence[Sequence[Mapping[str, Any]]]) -> list[int]:
        return [self.count_messages(p) for p in prompts]


def scale_for(measured_ratio: float) -> float:
    """The margin factor for a measured server/tiktoken ratio: a little above it, in 5% steps.

    Steps keep the tokenizer id (and so the cached counts) stable while the
    measured ratio wobbles from prompt to prompt.
    """
    return max(1.0, math.ceil((measured_ratio + 0.02) * 20) / 20)


class ServerCounter:
    """Counts with the server's tokenizer; answers are cached in memory per text or prompt."""

    def __init__(self, client: httpx.Client, facts: ServerFacts, headers: Headers) -> None:
        assert facts.tokenize is not None
        self._client = client
        self._facts = facts
        self._root = root_url(facts.base_url)
        self._headers = headers
        self._lock = threading.Lock()
        self._texts: OrderedDict[str, int] = OrderedDict()
        self._prompts: OrderedDict[str, int] = OrderedDict()
        if facts.tokenize == "llama-cpp-python" and (
            facts.framing is None or facts.implicit_system is None
        ):
            facts.framing, facts.implicit_system = self._measure_framing()
        self._template_mark = ""
        if facts.tokenize != "llama-cpp-python":
            # The chat template is part of what a count means: mark it in the id.
            self._template_mark = str(self.count_messages(_REFERENCE_CHAT))

    @property
    def framing(self) -> tuple[int, int] | None:
        return self._facts.framing

    @property
    def tokenizer_id(self) -> str:
        facts = self._facts
        tail = self._template_mark
        if facts.tokenize == "llama-cpp-python":
            per, priming = facts.framing or DEFAULT_FRAMING
            tail = f"f{per}+{priming}"
            if facts.implicit_system:
                tail += f"+s{facts.implicit_system}"
        return f"server:{facts.tokenize}:{facts.tokenizer_fingerprint}:{tail}"

    # -- counting -----------------------------------------------------------------------

    def count_text(self, text: str) -> int:
        with self._lock:
            if text in self._texts:
                self._texts.move_to_end(text)
                return self._texts[text]
        count = len(self._tokenize(text))
        self._remember(self._texts, text, count)
        return count

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        key = json.dumps([[m.get("role"), m.get("content")] for m in messages])
        with self._lock:
            if key in self._prompts:
                self._prompts.move_to_end(key)
                return self._prompts[key]
        count = self._count_prompt(messages)
        self._remember(self._prompts, key, count)
        return count

    def count_batch(self, prompts: Sequence[Sequence[Mapping[str, Any]]]) -> list[int]:
        """The counts of many prompts, asked over a few parallel requests."""
        if len(prompts) <= 1:
            return [self.count_messages(p) for p in prompts]
        if self._facts.tokenize == "llama-cpp-python":
            # Counts are sums of per-text counts: ask for each distinct text once.
            texts = list(
                dict.fromkeys(
                    str(m.get(k, "")) for p in prompts for m in p for k in ("role", "content")
                )
            )
            self._parallel(self.count_text, texts)
        return self._parallel(self.count_messages, list(prompts))

    def _parallel(self, fn: Callable[[Any], int], items: list[Any]) -> list[int]:
        with ThreadPoolExecutor(max_workers=BATCH_WORKERS) as pool:
            return list(pool.map(fn, items))

    def _remember(self, cache: OrderedDict[str, int], key: str, count: int) -> None:
        with self._lock:
            cache[key] = count
            if len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)

    def _count_prompt(self, messages: Sequence[Mapping[str, Any]]) -> int:
        chat = [{"role": m.get("role"), "content": m.get("content")} for m in messages]
        kind = self._facts.tokenize
        if kind == "vllm":
            body = self._post(
                "/tokenize",
                {"model": self._facts.model, "messages": chat, "add_generation_prompt": True},
            )
            count = body.get("count")
            if isinstance(count, int):
                return count
            return len(self._ids(body, "/tokenize"))
        if kind == "llama.cpp":
            rendered = self._post("/apply-template", {"messages": chat}).get("prompt")
            if not isinstance(rendered, str):
                raise self._error("/apply-template", "its answer has no prompt")
            body = self._post("/tokenize", {"content": rendered, "add_special": True})
            return len(self._ids(body, "/tokenize"))
        per, priming = self._facts.framing or DEFAULT_FRAMING
        count = priming + sum(per + self._text_cost(m) for m in messages)
        if not any(m.get("role") == "system" for m in messages):
            count += self._facts.implicit_system or 0
        return count

    def _text_cost(self, message: Mapping[str, Any]) -> int:
        # Templates write the role's name as text beside the content; the rest of
        # a message's framing (markers, separators) is the same for every message.
        return self.count_text(str(message.get("role", ""))) + self.count_text(
            str(message.get("content", ""))
        )

    def _tokenize(self, text: str) -> list[int]:
        kind = self._facts.tokenize
        if kind == "vllm":
            body = self._post(
                "/tokenize",
                {"model": self._facts.model, "prompt": text, "add_special_tokens": False},
            )
            return self._ids(body, "/tokenize")
        if kind == "llama.cpp":
            return self._ids(
                self._post("/tokenize", {"content": text, "add_special": False}), "/tokenize"
            )
        body = self._post("/extras/tokenize", {"input": text, "model": self._facts.model})
        return self._ids(body, "/extras/tokenize")

    # -- measuring the framing of a server without a template endpoint ------------------

    def _measure_framing(self) -> tuple[tuple[int, int], int]:
        """((tokens per message, tokens of the reply's priming), tokens of an implicit system
        prompt), from three one-token replies.

        llama-cpp-python renders the chat template itself and exposes no endpoint
        for it; the prompt lengths it reports for two small chats, less their
        texts' counts, give the framing exactly for templates that wrap each
        message the same way (ChatML, Llama, Mistral...). A third chat with no
        system message shows what the template adds then (SmolLM2's writes a
        default system prompt of about 20 tokens).
        """
        short, longer, bare = _FRAMING_PROBES
        p1 = self._reported_prompt_tokens(short)
        p2 = self._reported_prompt_tokens(longer)
        if p1 is None or p2 is None:
            return DEFAULT_FRAMING, DEFAULT_IMPLICIT_SYSTEM
        c1 = sum(self._text_cost(m) for m in short)
        c2 = sum(self._text_cost(m) for m in longer)
        added = len(longer) - len(short)
        per = math.ceil((p2 - p1 - (c2 - c1)) / added)
        priming = p1 - c1 - per * len(short)
        if per < 0 or priming < 0:
            # not a template of that shape: stay conservative
            return DEFAULT_FRAMING, DEFAULT_IMPLICIT_SYSTEM
        p3 = self._reported_prompt_tokens(bare)
        if p3 is None:
            return (per, priming), DEFAULT_IMPLICIT_SYSTEM
        c3 = sum(self._text_cost(m) for m in bare)
        return (per, priming), max(0, p3 - (priming + per * len(bare) + c3))

    def _reported_prompt_tokens(self, chat: list[dict[str, str]]) -> int | None:
        try:
            response = self._client.post(
                f"{self._facts.base_url}/chat/completions",
                json={
                    "model": self._facts.model,
                    "messages": chat,
                    "max_tokens": 1,
                    "temperature": 0.0,
                    "stream": False,
                },
                headers=self._headers(),
            )
            body = json.loads(response.content) if response.status_code < 400 else {}
        except (httpx.HTTPError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        usage = body.get("usage") if isinstance(body, dict) else None
        value = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return value if isinstance(value, int) and value > 0 else None

    # -- plumbing -------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post(f"{self._root}{path}", json=body, headers=self._headers())
        except httpx.HTTPError as exc:
            raise self._error(path, f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise self._error(path, f"HTTP {response.status_code}")
        try:
            data = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._error(path, "its answer is not JSON") from exc
        if not isinstance(data, dict):
            raise self._error(path, "its answer is not a JSON object")
        return data

    def _ids(self, body: dict[str, Any], path: str) -> list[int]:
        tokens = body.get("tokens")
        if not isinstance(tokens, list):
            raise self._error(path, "its answer has no token list")
        return tokens

    def _error(self, path: str, why: str) -> ModelServerError:
        return ModelServerError(
            f"Counting tokens with the server's tokenizer ({self._root}{path}) failed: {why}. "
            "Is the server still running? Check its logs and send again."
        )


_REFERENCE_CHAT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"},
]
_FRAMING_PROBES = (
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say yes."},
    ],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say yes."},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "Say no."},
    ],
    [{"role": "user", "content": "Say yes."}],
)
