"""What a model server says about itself: its context window and its tokenizer endpoint.

`discover` asks the server the questions each common one answers:

- vLLM: ``GET /v1/models`` gives ``max_model_len``; ``POST /tokenize`` counts chat
  messages with the model's own template;
- llama.cpp's server: ``GET /props`` gives ``n_ctx`` (also ``meta.n_ctx`` in
  ``/v1/models`` where present); ``POST /apply-template`` and ``POST /tokenize``
  count exactly;
- llama-cpp-python's server: ``POST /extras/tokenize`` counts text; nothing it
  serves says its window, which is learnt from its first refusal (see
  `LLAMA_CPP_PYTHON_GUESS` for why no probe asks for it);
- Ollama: ``POST /api/show`` gives the model's context length and the ``num_ctx``
  it runs with (Ollama's own default when none is set);
- OpenAI's API: a table of its hosted models' windows.

Otherwise the window is a conservative guess, marked as one. What was learnt is
kept per base URL and model (`ServerFacts`, a small JSON file in the cache
folder), so a server that is down, or one that only states its window when it
refuses a prompt, is still budgeted right next time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ValidationError
from recursa.memory import locations

ServerKind = Literal["vllm", "llama.cpp", "llama-cpp-python", "ollama", "openai", "unknown"]
TokenizeKind = Literal["vllm", "llama.cpp", "llama-cpp-python"]

# Used when nothing says how long the server's context is. Small on purpose: a
# budget that is too small costs some history, one that is too large costs refused
# prompts (or, on servers that truncate, silently lost history).
GUESSED_CONTEXT_WINDOW = 4096
# Ollama runs a model with this window unless num_ctx (or OLLAMA_CONTEXT_LENGTH,
# which it does not report) says otherwise; older versions used 2048, so that is
# the safe reading.
OLLAMA_DEFAULT_NUM_CTX = 2048

# OpenAI's hosted chat models, longest prefix first wins.
OPENAI_WINDOWS: tuple[tuple[str, int], ...] = (
    ("gpt-4.1", 1_047_576),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-4-32k", 32_768),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo-instruct", 4_096),
    ("gpt-3.5-turbo", 16_385),
    ("gpt-5", 400_000),
    ("o1-mini", 128_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4-mini", 200_000),
)

# llama-cpp-python's server states its window (its --n_ctx, 2048 unless set) only
# in the refusal of a longer prompt. Its refusal comes before any evaluation, but
# only for a prompt at least that long: a probe can never be sure to be longer than
# the window (nothing bounds --n_ctx), and a probe that is not would be prefilled
# whole. So the window is learnt from the first refusal of a real prompt.
LLAMA_CPP_PYTHON_GUESS = (
    "a guess: llama-cpp-python's server does not report its window, which is its --n_ctx, "
    "2048 unless set; a smaller one is learnt from the first prompt it refuses"
)

# Discovery must not hold up opening a conversation for long.
PROBE_TIMEOUT_S = 5.0


class ServerFacts(BaseModel):
    """What is known about one model on one server; persisted between sessions."""

    base_url: str
    model: str
    kind: ServerKind = "unknown"
    window: int | None = None  # the context window the server reports
    window_source: str = ""  # where `window` came from, in words
    stated_window: int | None = None  # the window a refusal stated (wins when smaller)
    tokenize: TokenizeKind | None = None  # how the server counts tokens
    tokenizer_fingerprint: str | None = None  # the server tokenizer's ids of a probe text
    framing: tuple[int, int] | None = None  # (per message, reply priming) measured tokens
    # Tokens the template adds to a chat that has no system message (SmolLM2's, Qwen's
    # and others' templates write a default system prompt then), measured with framing.
    implicit_system: int | None = None
    count_scale: float | None = None  # the margin tiktoken's counts are multiplied by
    measured_ratio: float | None = None  # the largest server/tiktoken ratio measured
    checked_at: float = 0.0  # when the server last answered the probes (epoch seconds)

    def effective_window(self) -> tuple[int, str, bool]:
        """(window, where it came from, whether it is a guess)."""
        if self.stated_window is not None and (
            self.window is None or self.stated_window < self.window
        ):
            return self.stated_window, "stated by the server when it refused a prompt", False
        if self.window is not None:
            return self.window, self.window_source, False
        known = openai_window(self.model) if self.kind == "openai" else None
        if known is not None:
            return known, "the known window of OpenAI's hosted model", False
        if self.kind == "llama-cpp-python":
            return GUESSED_CONTEXT_WINDOW, LLAMA_CPP_PYTHON_GUESS, True
        return GUESSED_CONTEXT_WINDOW, "a guess: the server did not say", True


def openai_window(model: str) -> int | None:
    """The context window of an OpenAI hosted model by its name, or None when unknown."""
    name = model.lower()
    best: tuple[int, int] | None = None
    for prefix, window in OPENAI_WINDOWS:
        if name.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), window)
    return best[1] if best else None


def root_url(base_url: str) -> str:
    """The server's root: the base URL without its trailing /v1 (where /props etc. live)."""
    return re.sub(r"/v1$", "", base_url.rstrip("/"))


def is_openai_api(base_url: str) -> bool:
    return httpx.URL(base_url).host == "api.openai.com"


# -- the cache ---------------------------------------------------------------------


def facts_path(base_url: str, model: str) -> Path:
    key = hashlib.sha256(f"{base_url.rstrip('/')}\n{model}".encode()).hexdigest()[:24]
    return locations.server_facts_dir() / f"{key}.json"


def load_facts(base_url: str, model: str) -> ServerFacts | None:
    """The facts kept from an earlier session, or None (none kept, or unreadable)."""
    path = facts_path(base_url, model)
    try:
        facts = ServerFacts.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError):
        return None  # nothing kept (or a damaged file): discovery starts afresh
    if facts.base_url != base_url.rstrip("/") or facts.model != model:
        return None
    return facts


def save_facts(facts: ServerFacts) -> None:
    """Keep `facts` for the next session (written whole, then renamed into place)."""
    path = facts_path(facts.base_url, facts.model)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(facts.model_dump_json(indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        # A read-only cache only costs rediscovery next time; the session goes on.
        with contextlib.suppress(OSError):
            tmp.unlink()


# -- probing -----------------------------------------------------------------------


def discover(
    client: httpx.Client, base_url: str, model: str, headers: dict[str, str]
) -> ServerFacts | None:
    """Ask the server what it is; None when it did not answer at all (down, unreachable).

    Every probe is a plain GET or a harmless POST; an error in one only means
    the server is not of that kind.
    """
    base = base_url.rstrip("/")
    facts = ServerFacts(base_url=base, model=model)
    if is_openai_api(base):
        # OpenAI's API reports no windows and has no tokenizer endpoint: its table
        # says the window, tiktoken counts.
        facts.kind = "openai"
        facts.checked_at = time.time()
        return facts
    root = root_url(base)
    answered = False
    try:
        client.head(root, headers=headers, timeout=PROBE_TIMEOUT_S)
    except httpx.TransportError:
        return None  # nothing listens there: no use asking each question in turn
    models = _get_json(client, f"{base}/models", headers)
    if models is not None:
        answered = True
        _read_models(facts, models)
    if facts.window is None or facts.kind in ("unknown", "llama.cpp"):
        props = _get_json(client, f"{root}/props", headers)
        if props is not None:
            answered = True
            _read_props(facts, props)
    if facts.kind in ("unknown", "ollama") and facts.window is None:
        show = _post_json(client, f"{root}/api/show", {"model": model}, headers)
        if isinstance(show, dict) and ("model_info" in show or "parameters" in show):
            answered = True
            facts.kind = "ollama"
            _read_ollama(facts, show)
    if not answered:
        return None
    _find_tokenizer(client, facts, root, headers)
    facts.checked_at = time.time()
    return facts


def _read_models(facts: ServerFacts, body: Any) -> None:
    data = body.get("data") if isinstance(body, dict) else None
    entries = [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
    entry = next((d for d in entries if d.get("id") == facts.model), None)
    if entry is None and len(entries) == 1:
        entry = entries[0]  # llama.cpp serves one model under any name
    if entry is None:
        return
    owner = str(entry.get("owned_by") or "")
    if _positive(entry.get("max_model_len")):
        facts.kind = "vllm"
        facts.window = int(entry["max_model_len"])
        facts.window_source = "vLLM /v1/models max_model_len"
        return
    raw_meta = entry.get("meta")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    if owner == "llamacpp" or "n_ctx_train" in meta:
        facts.kind = "llama.cpp"
    if _positive(meta.get("n_ctx")):
        facts.window = int(meta["n_ctx"])
        facts.window_source = "llama.cpp /v1/models meta.n_ctx"
    elif owner in ("library", "ollama"):
        facts.kind = "ollama"


def _read_props(facts: ServerFacts, body: Any) -> None:
    if not isinstance(body, dict):
        return
    settings = body.get("default_generation_settings")
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    if not _positive(n_ctx):
        n_ctx = body.get("n_ctx")
    if isinstance(n_ctx, int) and n_ctx > 0:
        facts.kind = "llama.cpp"
        facts.window = n_ctx
        facts.window_source = "llama.cpp /props n_ctx"


def _read_ollama(facts: ServerFacts, body: dict[str, Any]) -> None:
    raw_info = body.get("model_info")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    trained = next(
        (int(v) for k, v in info.items() if k.endswith(".context_length") and _positive(v)), None
    )
    match = re.search(r"(?m)^\s*num_ctx\s+(\d+)", str(body.get("parameters") or ""))
    if match:
        num_ctx, source = int(match.group(1)), "Ollama /api/show num_ctx"
    else:
        num_ctx, source = OLLAMA_DEFAULT_NUM_CTX, "Ollama's default num_ctx (the model sets none)"
    if trained is not None and trained < num_ctx:
        num_ctx, source = trained, "Ollama /api/show context length"
    facts.window = num_ctx
    facts.window_source = source


def _find_tokenizer(
    client: httpx.Client, facts: ServerFacts, root: str, headers: dict[str, str]
) -> None:
    """Which tokenize endpoint the server has, with a fingerprint of its tokenizer."""
    candidates: list[TokenizeKind] = {
        "vllm": ["vllm"],
        "llama.cpp": ["llama.cpp"],
        "ollama": [],
    }.get(facts.kind, ["llama-cpp-python", "vllm", "llama.cpp"])  # type: ignore[assignment]
    for kind in candidates:
        ids = tokenize_ids(client, kind, root, facts.model, FINGERPRINT_TEXT, headers)
        if ids:
            facts.tokenize = kind
            digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]
            facts.tokenizer_fingerprint = f"{len(ids)}:{digest}"
            if facts.kind == "unknown":
                facts.kind = kind
            return


# A text with words, digits, punctuation, accents and a chat marker: two different
# tokenizers almost never split it into the same ids.
FINGERPRINT_TEXT = "Hello, world! 12345 naïve café <|im_start|> 漢字 \n\tdef f(x): return x**2"


def tokenize_ids(
    client: httpx.Client,
    kind: TokenizeKind,
    root: str,
    model: str,
    text: str,
    headers: dict[str, str],
) -> list[int] | None:
    """The server tokenizer's ids for plain `text`, or None when the endpoint is not there."""
    if kind == "vllm":
        body = _post_json(
            client,
            f"{root}/tokenize",
            {"model": model, "prompt": text, "add_special_tokens": False},
            headers,
        )
    elif kind == "llama.cpp":
        body = _post_json(
            client, f"{root}/tokenize", {"content": text, "add_special": False}, headers
        )
    else:
        body = _post_json(
            client, f"{root}/extras/tokenize", {"input": text, "model": model}, headers
        )
    tokens = body.get("tokens") if isinstance(body, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        return None
    return [int(t) for t in tokens]


def _get_json(client: httpx.Client, url: str, headers: dict[str, str]) -> Any:
    try:
        response = client.get(url, headers=headers, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError:
        return None
    return _json_or_none(response)


def _post_json(client: httpx.Client, url: str, body: Any, headers: dict[str, str]) -> Any:
    try:
        response = client.post(url, json=body, headers=headers, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError:
        return None
    return _json_or_none(response)


def _json_or_none(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        return None
    try:
        return json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
