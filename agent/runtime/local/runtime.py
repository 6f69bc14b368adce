"""The local runtime: a causal LM run in this process with torch, with KV prefix reuse.

`load_local()` loads a model from a folder, a GGUF file (converted once into a
safetensors cache, see `convert`) or a Hugging Face id already in the local hub
cache. `LocalRuntime.stream()` decodes token by token in a lean loop; with a
`cache_key` it keeps that conversation's KV cache and the token ids it covers,
and the next call prefills only what follows the longest common token prefix.

torch and transformers are imported inside the functions that need them, so
importing this module (or `recursa.agent.runtime`) stays cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from recursa.agent.errors import (
    InvalidInputError,
    MissingDependencyError,
    ModelError,
    ModelNotFoundError,
)
from recursa.agent.runtime.local.convert import ProgressCallback, ensure_converted, gguf_file_type
from recursa.agent.runtime.local.gate import Gate
from recursa.agent.runtime.local.kv_cache import (
    DEFAULT_MAX_CACHED,
    ConversationCaches,
    reuse_prefix,
)
from recursa.agent.runtime.packages import transformers_bars_off
from recursa.agent.runtime.protocol import (
    CancelToken,
    ChatMessage,
    FinishReason,
    GenerationParams,
    TextStream,
    Usage,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_LOCAL_INSTALL = 'pip install "recursa[local]"'
# Prefill runs in chunks so a cancel is noticed within one chunk, not after the whole prompt.
_PREFILL_CHUNK = 512
PRECISIONS = ("float32", "bfloat16", "float16", "int8", "int4", "float16w")
# On CPU the default precision follows the weights' own: a GGUF quantized to 4 bits
# or fewer runs with int4 weights, one of 5 to 8 bits with int8 (their codes hold no
# more precision than that, and decode speed on a CPU is the bytes read per token);
# everything else runs in float32. Keys are llama.cpp's `general.file_type` values.
# Q4_0, Q4_1, Q2_K..Q4_K_M, the IQ1..IQ4 types and the ternary TQ types are 4 bits or fewer.
_INT4_FILE_TYPES = frozenset({2, 3, 4, *range(10, 16), *range(19, 32), 36, 37})
_INT8_FILE_TYPES = frozenset({7, 8, 9, 16, 17, 18})
DEFAULT_CPU_PRECISION = "float32"


# Precisions whose built (packed) weights are cached between loads.
_CACHED_PRECISIONS = ("int4", "int8")


class LocalOptions(Protocol):
    """The fields of the registry's RuntimeOptions this runtime reads."""

    device: str
    threads: int | None
    context_window: int | None


@dataclass(frozen=True)
class LoadInfo:
    """How a local model was loaded; `from_cache` is True when a converted copy was reused."""

    source: str
    path: str
    converted: bool
    from_cache: bool
    engine: str
    device: str
    precision: str
    load_s: float
    packed_from_cache: bool = False


def _require_torch() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(
            f"The local runtime needs torch and transformers ({exc}). "
            f"Install them with: {_LOCAL_INSTALL}"
        ) from exc
    return torch, transformers


def _option(options: Any, field: str, default: Any) -> Any:
    value = getattr(options, field, None) if options is not None else None
    return default if value is None else value


def _pick_device(torch: Any, wanted: str) -> Any:
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ModelError(
            "device='cuda' was asked for but torch sees no CUDA device. Install a CUDA "
            "build of torch, or use device='cpu' (or 'auto')."
        )
    if wanted not in ("cpu", "cuda"):
        raise InvalidInputError(f"Unknown device {wanted!r}; use 'cpu', 'cuda' or 'auto'.")
    return torch.device(wanted)


def default_precision(device: str, gguf: Path | None = None) -> str:
    """The precision used when none is asked for: bfloat16 on CUDA; on CPU, by the weights.

    A GGUF's quantization decides (see _INT4_FILE_TYPES): the embedded SmolLM2 is
    Q4_1, so it runs with int4 weights. int8 and int4 keep greedy output with a
    reused KV cache bit-identical to a full prefill (see llama._attend_each).
    """
    if device == "cuda":
        return "bfloat16"
    file_type = gguf_file_type(gguf) if gguf is not None else None
    if file_type in _INT4_FILE_TYPES:
        from recursa.agent.runtime.local.llama import int4_available

        return "int4" if int4_available() else "int8"
    if file_type in _INT8_FILE_TYPES:
        return "int8"
    return DEFAULT_CPU_PRECISION


def _restore_engine(config: Any, folder: Path, precision: str, device: Any) -> tuple[Any, Path]:
    """The engine restored from the packed-weight cache (None when absent), and the cache's path."""
    from recursa.agent.runtime.local import llama
    from recursa.agent.runtime.local.engine_cache import engine_cache_path, load_engine_tensors

    path = engine_cache_path(folder, precision)
    tensors = load_engine_tensors(path)
    if tensors is None:
        return None, path
    try:
        return llama.LlamaEngine.restore(config, tensors, precision=precision, device=device), path
    except ValueError as exc:
        log.warning(
            "The cached engine weights in %s do not fit the model (%s); rebuilding.", path, exc
        )
        return None, path


def load_local(
    source: str | Path | None = None,
    *,
    gguf_file: str | None = None,
    name: str | None = None,
    options: LocalOptions | Any | None = None,
    progress: ProgressCallback | None = None,
    precision: str | None = None,
    max_cached_conversations: int = DEFAULT_MAX_CACHED,
) -> LocalRuntime:
    """Load a local model and wrap it in a `LocalRuntime`.

    `source`: a model folder, a `.gguf` file, a folder plus `gguf_file`, or a
    Hugging Face id that is already in the local hub cache (nothing is
    downloaded). None means the embedded default, SmolLM2-135M-Instruct.
    `precision`: how the weights are held: "float32", "bfloat16", "float16",
    "int8" or "int4" (weight-only, CPU) or "float16w" (float16 weights with
    float32 activations, x86 CPU). None picks the options' `precision` if set,
    else `default_precision` (int4 for the embedded Q4_1 model on CPU).
    """
    torch, transformers = _require_torch()
    started = time.perf_counter()
    if source is None:
        from recursa.agent.runtime.default_model import default_gguf_path

        source = default_gguf_path()
    source_text = str(source)
    path = Path(source).expanduser()
    if gguf_file is not None:
        path = path / gguf_file
    converted = False
    from_cache = False
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file not found: {path}. Check the path.")
        cached = ensure_converted(path, progress=progress)
        converted, from_cache = cached.converted, not cached.converted
        folder: str = str(cached.path)
        local_only = True
    elif path.is_dir():
        folder, local_only = str(path), True
    elif path.exists():
        raise ModelNotFoundError(
            f"{path} is neither a model folder nor a .gguf file. Give a folder with "
            "config.json, or a .gguf file."
        )
    elif "/" in source_text and not source_text.startswith((".", "/", "~")):
        folder, local_only = source_text, True
    else:
        raise ModelNotFoundError(f"No model found at {source_text}. Check the path.")

    device = _pick_device(torch, str(_option(options, "device", "cpu")))
    precision = precision or _option(options, "precision", None)
    gguf_source = path if path.suffix == ".gguf" else None
    precision = precision or default_precision(device.type, gguf_source)
    if precision not in PRECISIONS:
        raise InvalidInputError(
            f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}."
        )
    if precision in ("int8", "int4") and device.type != "cpu":
        raise InvalidInputError(f"precision={precision!r} is for CPU; use 'bfloat16' on CUDA.")
    if precision == "int4":
        from recursa.agent.runtime.local.llama import int4_available

        if not int4_available():
            raise InvalidInputError(
                "precision='int4' needs a torch build with the CPU int4 weight kernels "
                "(torch 2.6 or newer); use 'int8' or 'float32'."
            )
    if precision == "float16w":
        from recursa.agent.runtime.local.llama import float16_weights_available

        if device.type != "cpu" or not float16_weights_available():
            raise InvalidInputError(
                "precision='float16w' needs a CPU and a torch build with fbgemm (x86); "
                "use 'float32' (or 'bfloat16' on CUDA)."
            )
    if progress is not None:
        progress(f"Loading {name or source_text}", None)
    from recursa.agent.runtime.local import llama

    engine: Any = None
    packed_from_cache = False
    cache_path: Path | None = None
    try:
        with transformers_bars_off(), ThreadPoolExecutor(1) as pool:
            restoring: Future[tuple[Any, Path]] | None = None
            if precision in _CACHED_PRECISIONS and Path(folder).is_dir():
                # Quantized weights are packed once and cached: a later load restores them
                # without building the Hugging Face model (see engine_cache), checking the
                # cache while the tokenizer loads.
                config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
                if llama.supports_config(config):
                    restoring = pool.submit(
                        _restore_engine, config, Path(folder), precision, device
                    )
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                folder, local_files_only=local_only
            )
            if restoring is not None:
                engine, cache_path = restoring.result()
                packed_from_cache = engine is not None
            if engine is None:
                # Loaded in float32 on the CPU; the engine casts or quantizes its own copy.
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    folder, local_files_only=local_only, dtype=torch.float32
                )
    except OSError as exc:
        if path.exists():
            raise ModelError(f"Could not load the model in {folder}: {exc}") from exc
        raise ModelNotFoundError(
            f"The model {source_text!r} is not in the local Hugging Face cache and recursa "
            f"never downloads at run time. Download it first with: hf download {source_text}"
        ) from exc
    if getattr(tokenizer, "chat_template", None) is None:
        raise ModelError(
            f"The model {source_text!r} has no chat template; recursa needs a chat "
            "(instruct) model."
        )
    if engine is not None:
        engine_name = "llama-inplace"
    elif llama.supports(model):
        model.eval()
        config = model.config
        engine = llama.LlamaEngine(model, precision=precision, device=device)
        engine_name = "llama-inplace"
        del model  # the engine holds its own (fused) copies of the weights
        if cache_path is not None:
            from recursa.agent.runtime.local.engine_cache import save_engine_tensors

            save_engine_tensors(cache_path, engine.export())
    else:
        model.eval()
        config = model.config
        from recursa.agent.runtime.local.generic import GenericEngine

        if precision in ("int8", "int4", "float16w"):
            precision = "float32"  # quantized weights are a feature of the lean engine only
        model.to(device=device, dtype=getattr(torch, precision))
        engine = GenericEngine(model, device=device)
        engine_name = "hf-generic"
    window = int(_option(options, "context_window", 0) or engine.max_len)
    window = min(window, engine.max_len)
    info = LoadInfo(
        source=source_text,
        path=folder,
        converted=converted,
        from_cache=from_cache,
        engine=engine_name,
        device=str(device),
        precision=precision,
        load_s=time.perf_counter() - started,
        packed_from_cache=packed_from_cache,
    )
    return LocalRuntime(
        engine=engine,
        tokenizer=tokenizer,
        config=config,
        name=name or source_text,
        context_window=window,
        threads=_option(options, "threads", None),
        info=info,
        max_cached_conversations=max_cached_conversations,
    )


def _as_ids(encoded: Any) -> list[int]:
    # transformers 5 returns a BatchEncoding (a Mapping); older versions a list.
    if isinstance(encoded, Mapping):
        encoded = encoded["input_ids"]
    ids = list(encoded)
    if ids and isinstance(ids[0], list):
        ids = ids[0]
    return [int(i) for i in ids]


class LocalRuntime:
    """A model running in this process. Calls are serialized: one generation at a time."""

    def __init__(
        self,
        *,
        engine: Any,
        tokenizer: Any,
        config: Any,
        name: str,
        context_window: int,
        threads: int | None,
        info: LoadInfo,
        max_cached_conversations: int = DEFAULT_MAX_CACHED,
    ) -> None:
        import torch

        self._torch = torch
        self._engine = engine
        self._tokenizer = tokenizer
        self._name = name
        self._window = context_window
        self._threads = threads
        self.load_info = info
        self._caches = ConversationCaches(engine.new_state, max_cached_conversations)
        # One generation at a time (the TUI calls from worker threads), a person's turn
        # before background work; the tokenizer has its own lock so counting tokens
        # never waits for a whole reply.
        self._gate = Gate()
        self._tok_lock = threading.Lock()
        self._vocab_size = int(getattr(config, "vocab_size", 0) or len(tokenizer))
        self._eos = self._eos_ids(tokenizer, config)
        self._tokenizer_id: str | None = None
        self._closed = False
        # What is left to build (fbgemm's packing of a float16 head, ~0.3 s; the
        # tokenizer's id, ~0.1 s) is done while the user reads or types; whatever
        # needs it first waits for it.
        threading.Thread(target=self._prepare, name="recursa-prepare", daemon=True).start()

    def _prepare(self) -> None:
        try:
            _ = self.tokenizer_id
            prepare = getattr(self._engine, "prepare", None)
            if prepare is not None:
                prepare()
        except Exception:  # redone (and raised) by the first call that needs it
            log.debug("Preparing the local model in the background failed", exc_info=True)

    # -- identity ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return self._window

    @property
    def tokenizer_id(self) -> str:
        if self._tokenizer_id is None:
            with self._tok_lock:
                if self._tokenizer_id is None:
                    self._tokenizer_id = self._make_tokenizer_id(self._tokenizer)
        return self._tokenizer_id

    @staticmethod
    def _eos_ids(tokenizer: Any, config: Any) -> frozenset[int]:
        ids: set[int] = set()
        for value in (getattr(config, "eos_token_id", None), tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(int(v) for v in value)
        return frozenset(ids)

    @staticmethod
    def _make_tokenizer_id(tokenizer: Any) -> str:
        import hashlib

        digest = hashlib.sha256()
        digest.update(str(tokenizer.chat_template).encode())
        vocab = tokenizer.get_vocab()
        for token, index in sorted(vocab.items(), key=lambda item: item[1]):
            digest.update(f"{index}\t{token}\n".encode())
        digest.update(repr(sorted(tokenizer.all_special_tokens)).encode())
        stem = Path(str(getattr(tokenizer, "name_or_path", "") or "tokenizer")).name
        return f"hf:{stem[:40]}:{len(vocab)}:{digest.hexdigest()[:16]}"

    # -- counting ---------------------------------------------------------------------------

    def prompt_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The token ids of `messages` as they are sent: chat template and generation prompt."""
        with self._tok_lock:
            encoded = self._tokenizer.apply_chat_template(
                [dict(m) for m in messages], add_generation_prompt=True, tokenize=True
            )
        return _as_ids(encoded)

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(self.prompt_ids(messages))

    def count_text(self, text: str) -> int:
        with self._tok_lock:
            return len(self._tokenizer.encode(text, add_special_tokens=False))

    def _decode(self, ids: list[int]) -> str:
        with self._tok_lock:
            return str(
                self._tokenizer.decode(
                    ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
                )
            )

    # -- cache bookkeeping ------------------------------------------------------------------

    def cached_keys(self) -> list[str]:
        """Conversation keys whose KV cache is kept, least recently used first."""
        return self._caches.keys()

    def forget(self, cache_key: str) -> None:
        """Drop one conversation's KV cache."""
        with self._gate.held(background=False):
            self._caches.forget(cache_key)

    def cached_ids(self, cache_key: str) -> list[int]:
        """The token ids whose KV cache is kept under `cache_key` (empty when none is)."""
        with self._gate.held(background=False):
            state = self._caches.peek(cache_key)
            return list(state.ids) if state is not None else []

    # -- background work --------------------------------------------------------------------

    def background(self) -> AbstractContextManager[None]:
        """Generations this thread starts inside the block are background work.

        They run in steps and step aside whenever a foreground generation waits,
        so a summary folded after a reply never delays the next turn's reply.
        Background generations keep their own KV states, apart from foreground ones.
        """
        return self._gate.background()

    def prefix_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The token ids of `messages` as the start of a longer prompt (no generation prompt)."""
        with self._tok_lock:
            encoded = self._tokenizer.apply_chat_template(
                [dict(m) for m in messages], add_generation_prompt=False, tokenize=True
            )
        return _as_ids(encoded)

    def warm(self, messages: Sequence[ChatMessage], *, cache_key: str) -> int:
        """Prefill `messages` into `cache_key`'s KV cache, as background work; returns tokens added.

        The next `stream()` with this key whose prompt starts with these messages
        then prefills only what follows them. Best effort: it stops (keeping what
        it computed) as soon as a foreground generation waits, and a prompt at or
        over the window is skipped.
        """
        if self._closed or not messages:
            return 0
        ids = self.prefix_ids(messages)
        if len(ids) >= self._window:
            return 0
        added = 0
        with self._running(background=True):
            if self._closed:
                return 0
            state = self._caches.state_for(cache_key)
            common = reuse_prefix(state, ids + [-1])  # -1: nothing to keep past the prefix
            # Whole chunks, as a turn prefills (a long one takes the fast path): a turn that
            # arrives meanwhile interrupts the chunk between two layers and takes over.
            chunk = int(getattr(self._engine, "prefill_chunk", _PREFILL_CHUNK))
            waiting = self._foreground_waiting
            for start in range(common, len(ids), chunk):
                part = ids[start : start + chunk]
                try:
                    done = self._engine.forward(state, part, yield_to=waiting)
                except Exception as exc:
                    self._caches.forget(cache_key)
                    raise ModelError(f"Local prefill failed: {exc}") from exc
                if done is None:
                    break
                added += len(part)
        return added

    def _foreground_waiting(self) -> bool:
        """Asked by background forward passes between layers: should they give the model up?"""
        return self._gate.foreground_waiting

    # -- generation -------------------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams | None = None,
        *,
        cache_key: str | None = None,
        cancel: CancelToken | None = None,
    ) -> TextStream:
        if self._closed:
            raise ModelError("This runtime was closed; load the model again.")
        if not messages:
            raise InvalidInputError("Cannot generate a reply to an empty list of messages.")
        token = cancel or CancelToken()
        background = self._gate.in_background
        if background:
            # Background work keeps its own states, so pausing it never disturbs a turn's.
            cache_key = f"{cache_key or 'scratch'}#background"
        gen = self._generate(
            list(messages), params or GenerationParams(), cache_key, token, background
        )
        return TextStream(gen, token)

    @contextmanager
    def _running(self, *, background: bool) -> Iterator[None]:
        """Hold the model: the gate, the thread count, inference mode."""
        torch = self._torch
        with self._gate.held(background=background):
            previous_threads = torch.get_num_threads()
            if self._threads:
                torch.set_num_threads(int(self._threads))
            try:
                with torch.inference_mode():
                    yield
            finally:
                if self._threads:
                    torch.set_num_threads(previous_threads)

    def _generate(
        self,
        messages: list[ChatMessage],
        params: GenerationParams,
        cache_key: str | None,
        cancel: CancelToken,
        background: bool = False,
    ) -> Generator[str, None, Usage]:
        with self._running(background=background):
            if self._closed:
                raise ModelError("This runtime was closed; load the model again.")
            try:
                usage = yield from self._run(messages, params, cache_key, cancel, background)
            except (GeneratorExit, ModelError, InvalidInputError):
                raise
            except Exception as exc:
                # A failure mid-forward leaves the cache unknown: drop it, keep the runtime.
                self._caches.forget(cache_key)
                raise ModelError(f"Local generation failed: {exc}") from exc
            return usage

    def _step_aside(self) -> None:
        """Background work between two steps: let a waiting turn run first."""
        if self._gate.step_aside():
            if self._closed:
                raise ModelError("This runtime was closed; load the model again.")
            if self._threads:
                self._torch.set_num_threads(int(self._threads))

    def _run(
        self,
        messages: list[ChatMessage],
        params: GenerationParams,
        cache_key: str | None,
        cancel: CancelToken,
        background: bool = False,
    ) -> Generator[str, None, Usage]:
        from recursa.agent.runtime.local.decode import (
            IncrementalDetokenizer,
            Sampler,
            StopMatcher,
        )

        started = time.perf_counter()
        prompt = self.prompt_ids(messages)
        if len(prompt) >= self._window:
            raise InvalidInputError(
                f"The prompt has {len(prompt)} tokens but {self._name} attends to "
                f"{self._window}; send fewer or shorter messages."
            )
        budget = min(params.max_new_tokens, self._window - len(prompt))
        state = self._caches.state_for(cache_key)
        common = reuse_prefix(state, prompt)
        usage = Usage(
            prompt_tokens=len(prompt),
            prefill_tokens=len(prompt) - common,
            reused_tokens=common,
        )
        finish: FinishReason = "length"
        logits: torch.Tensor | None = None
        chunk = int(getattr(self._engine, "prefill_chunk", _PREFILL_CHUNK))
        # Background work (a summary's prompt) gives the model up between two layers
        # when a turn waits, and resumes that chunk once the turn is done.
        waiting = self._foreground_waiting if background else None
        start = common
        while start < len(prompt) and not cancel.cancelled:
            if background:
                self._step_aside()
            part = prompt[start : start + chunk]
            step = self._engine.forward(state, part, yield_to=waiting)
            if step is not None:
                logits = step
                start += len(part)
        if cancel.cancelled or logits is None:
            usage.finish_reason = "cancelled"
            usage.total_s = time.perf_counter() - started
            return usage

        sampler = Sampler(params, prompt, self._vocab_size)
        detok = IncrementalDetokenizer(self._decode)
        stops = StopMatcher(params.stop)
        first_at: float | None = None
        produced = 0
        while True:
            token = sampler.pick(logits.cpu() if logits.device.type != "cpu" else logits)
            if first_at is None:
                first_at = time.perf_counter()
                usage.time_to_first_token_s = first_at - started
            if token in self._eos:
                finish = "eos"
                break
            produced += 1
            text, stopped = stops.feed(detok.push(token))
            if text:
                yield text
            if stopped:
                finish = "stop"
                break
            if produced >= budget:
                finish = "length"
                break
            if cancel.cancelled:
                finish = "cancelled"
                break
            if background:
                self._step_aside()
            logits = self._engine.forward(state, [token])
        if finish in ("eos", "length"):
            text, stopped = stops.feed(detok.flush())
            if stopped:
                finish = "stop"
            text += "" if stopped else stops.flush()
            if text:
                yield text
        ended = time.perf_counter()
        usage.completion_tokens = produced
        usage.finish_reason = finish
        usage.total_s = ended - started
        if first_at is not None and produced > 1 and ended > first_at:
            usage.decode_tokens_per_s = (produced - 1) / (ended - first_at)
        return usage

    def close(self) -> None:
        with self._gate.held(background=False):
            self._closed = True
            self._caches.clear()
            self._engine = None
