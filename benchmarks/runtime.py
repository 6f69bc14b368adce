"""Local runtime benchmark: load, prefill, decode, and time to first token over a long chat.

Run: python -m benchmarks.runtime [--runs N] [--turns 30] [--window 2048] [--threads T]
                                  [--precision P] [--skip-cold]

Measures, on the embedded default model (SmolLM2-135M-Instruct):
- cold load (GGUF conversion into a fresh cache folder) vs cached load;
- prefill tokens/s on 500-, 1,000- and 2,000-token prompts; decode tokens/s over 128 tokens;
- time to first token per turn over a simulated chat bounded at --window tokens,
  with KV prefix reuse on and off in the same run (each turn is timed both ways,
  back to back). Old turns are evicted in chunks: when the next turn would not
  fit, the oldest turns are dropped until the history is at most half the
  window, and then the chat only appends again, so the cached prefix stays valid;
- llama.cpp's prefill and decode rates on the same GGUF when `llama_cpp` is importable
  (`make bench-reference` installs it), measured after each of the runtime's own runs;
- the same prefill and decode figures again in the --also-precision precisions.

The runtime runs in its default precision unless --precision says otherwise: int4 for
the embedded model on CPU.

Figures vary with the machine's load: read medians and the ratios of one run.
Not a timed test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from recursa.agent.runtime.default_model import default_gguf_path
from recursa.agent.runtime.local import LocalRuntime, load_local
from recursa.agent.runtime.protocol import ChatMessage, GenerationParams

SYSTEM = "You are a helpful assistant. Answer clearly and briefly."
TOPICS = (
    "the water cycle",
    "how bread rises",
    "why the sky is blue",
    "the history of tea",
    "how bicycles stay upright",
    "what a compiler does",
    "how vaccines work",
    "the life of bees",
    "why leaves change colour",
    "how a refrigerator cools",
    "the rules of chess",
    "how rainbows form",
    "what causes tides",
    "how paper is made",
    "the planets of the solar system",
    "how volcanoes erupt",
    "what DNA is",
    "how airplanes fly",
    "the invention of printing",
    "how the heart pumps blood",
)
ESSAY = "Write a long, detailed essay about the history of the Roman Empire, in many paragraphs."


@dataclass
class Row:
    measure: str
    unit: str
    samples: list[float] = field(default_factory=list)

    def cells(self) -> tuple[str, str, str, str]:
        if not self.samples:
            return ("-", "-", "-", "0")
        low, mid, high = min(self.samples), statistics.median(self.samples), max(self.samples)
        return (f"{low:.3g}", f"{mid:.3g}", f"{high:.3g}", str(len(self.samples)))


def _load(options: Any, precision: str | None) -> LocalRuntime:
    return load_local(name="smollm2-135m", options=options, precision=precision)


def bench_load(
    runs: int, options: Any, precision: str | None, log: Callable[[str], None]
) -> tuple[Row, Row]:
    cold, cached = Row("load: cold (GGUF conversion)", "s"), Row("load: cached safetensors", "s")
    previous = os.environ.get("RECURSA_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="recursa-bench-") as scratch:
        try:
            for index in range(runs):
                os.environ["RECURSA_CACHE_DIR"] = str(Path(scratch) / f"cold-{index}")
                runtime = _load(options, precision)
                assert runtime.load_info.converted
                cold.samples.append(runtime.load_info.load_s)
                runtime.close()
                log(f"cold load {index + 1}/{runs}: {cold.samples[-1]:.1f} s")
            for index in range(runs):
                runtime = _load(options, precision)
                assert runtime.load_info.from_cache
                cached.samples.append(runtime.load_info.load_s)
                runtime.close()
                log(f"cached load {index + 1}/{runs}: {cached.samples[-1]:.2f} s")
        finally:
            if previous is None:
                os.environ.pop("RECURSA_CACHE_DIR", None)
            else:
                os.environ["RECURSA_CACHE_DIR"] = previous
    return cold, cached


def prompt_of(runtime: LocalRuntime, tokens: int) -> list[ChatMessage]:
    """A single user message whose templated prompt is exactly `tokens` long."""
    words = " ".join(f"{TOPICS[i % len(TOPICS)]} matters" for i in range(tokens))
    ids = runtime._tokenizer.encode(words, add_special_tokens=False)
    overhead = runtime.count_tokens([{"role": "user", "content": ""}])
    size = tokens - overhead
    while True:
        text = runtime._tokenizer.decode(ids[:size])
        messages: list[ChatMessage] = [{"role": "user", "content": text}]
        count = runtime.count_tokens(messages)
        if count == tokens or size <= 0:
            return messages
        size += tokens - count


PREFILL_SIZES = (500, 1000, 2000)


def bench_prefill_decode(
    runtime: LocalRuntime,
    runs: int,
    log: Callable[[str], None],
    reference: LlamaCppReference | None = None,
    sizes: tuple[int, ...] = PREFILL_SIZES,
) -> list[Row]:
    """Prefill rows (one per prompt size), the decode row, the decoded-tokens row."""
    label = runtime.load_info.precision
    prefills = {n: Row(f"prefill, {n:,}-token prompt [{label}]", "tok/s") for n in sizes}
    decode = Row(f"decode, 128 new tokens [{label}]", "tok/s")
    produced = Row(f"  tokens decoded per run [{label}]", "tok")
    prompts = {n: prompt_of(runtime, n) for n in sizes}
    essay: list[ChatMessage] = [{"role": "user", "content": ESSAY}]
    runtime.stream(essay, GenerationParams(max_new_tokens=8)).complete()  # warm-up
    for index in range(runs):
        for n, prompt in prompts.items():
            done = runtime.stream(prompt, GenerationParams(max_new_tokens=1)).complete()
            assert done.usage.time_to_first_token_s
            prefills[n].samples.append(done.usage.prompt_tokens / done.usage.time_to_first_token_s)
        done = runtime.stream(essay, GenerationParams(max_new_tokens=128)).complete()
        decode.samples.append(done.usage.decode_tokens_per_s or 0.0)
        produced.samples.append(done.usage.completion_tokens)
        rates = ", ".join(f"{n}: {row.samples[-1]:.0f}" for n, row in prefills.items())
        log(
            f"run {index + 1}/{runs}: prefill {rates} tok/s, "
            f"decode {decode.samples[-1]:.1f} tok/s ({done.usage.completion_tokens} tokens)"
        )
        if reference is not None:
            reference.measure(sizes)
            rates = ", ".join(f"{n}: {reference.prefill[n].samples[-1]:.0f}" for n in sizes)
            log(
                f"  llama.cpp: prefill {rates} tok/s, "
                f"decode {reference.decode.samples[-1]:.1f} tok/s"
            )
    return [*prefills.values(), decode, produced]


def bench_chat(
    runtime: LocalRuntime, turns: int, window: int, reply_tokens: int, log: Callable[[str], None]
) -> tuple[list[float], list[float], list[int]]:
    """Per-turn time to first token with reuse and without; the turns where eviction happened."""
    params = GenerationParams(max_new_tokens=reply_tokens)
    system: ChatMessage = {"role": "system", "content": SYSTEM}
    history: list[ChatMessage] = []
    with_reuse: list[float] = []
    without: list[float] = []
    evictions: list[int] = []
    key = "bench-chat"
    runtime.forget(key)
    for turn in range(1, turns + 1):
        topic = TOPICS[(turn - 1) % len(TOPICS)]
        user: ChatMessage = {
            "role": "user",
            "content": f"Turn {turn}. Tell me about {topic}, and how it relates to what we "
            "discussed before. Give two facts and one example.",
        }
        if runtime.count_tokens([system, *history, user]) + reply_tokens > window:
            # Chunked eviction: drop a block of the oldest turns at once.
            while history and runtime.count_tokens([system, *history, user]) > window // 2:
                del history[:2]
            evictions.append(turn)
        messages = [system, *history, user]
        reused = runtime.stream(messages, params, cache_key=key).complete()
        fresh = runtime.stream(messages, GenerationParams(max_new_tokens=1)).complete()
        assert reused.usage.time_to_first_token_s and fresh.usage.time_to_first_token_s
        with_reuse.append(reused.usage.time_to_first_token_s)
        without.append(fresh.usage.time_to_first_token_s)
        log(
            f"turn {turn:2d}: prompt {reused.usage.prompt_tokens:5d} tok, prefilled "
            f"{reused.usage.prefill_tokens:5d} with reuse; TTFT {with_reuse[-1]:.3f} s vs "
            f"{without[-1]:.3f} s"
        )
        history.extend([user, {"role": "assistant", "content": reused.text}])
    return with_reuse, without, evictions


class LlamaCppReference:
    """llama.cpp (through llama_cpp) on the same GGUF, measured between the runtime's own runs.

    Runs alternate (runtime, llama.cpp, runtime, ...) so that a slow phase of the
    machine hits both alike.
    """

    def __init__(self, gguf: Path, threads: int) -> None:
        import numpy
        from llama_cpp import Llama  # type: ignore[import-not-found]

        self._numpy = numpy
        self._llm = Llama(model_path=str(gguf), n_ctx=4096, n_threads=threads, verbose=False)
        self._vocab = self._llm.n_vocab()
        text = " ".join(f"{TOPICS[i % len(TOPICS)]} matters" for i in range(1200))
        self._tokens = self._llm.tokenize(text.encode())
        self.prefill = {n: Row(f"llama.cpp prefill, {n:,} tokens", "tok/s") for n in PREFILL_SIZES}
        self.decode = Row("llama.cpp decode, 128 tokens", "tok/s")

    @classmethod
    def open(cls, gguf: Path, threads: int) -> LlamaCppReference | None:
        try:
            import llama_cpp  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            return None
        return cls(gguf, threads)

    def measure(self, sizes: tuple[int, ...] = PREFILL_SIZES) -> None:
        llm = self._llm
        for n in sizes:
            llm.reset()
            start = time.perf_counter()
            llm.eval(self._tokens[:n])
            self.prefill[n].samples.append(n / (time.perf_counter() - start))
        start = time.perf_counter()
        for _step in range(128):
            # Greedy, like the runtime's decode: argmax of the last position's logits.
            pointer = llm._ctx.get_logits_ith(-1)
            logits = self._numpy.ctypeslib.as_array(pointer, shape=(self._vocab,))
            llm.eval([int(logits.argmax())])
        self.decode.samples.append(128 / (time.perf_counter() - start))


def _ratio(numerator: list[float], denominator: list[float]) -> float | None:
    if not numerator or not denominator:
        return None
    return statistics.median(numerator) / statistics.median(denominator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each measure")
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--window", type=int, default=2048)
    parser.add_argument("--reply-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--precision",
        default=None,
        help="int4, int8, float32, float16w or bfloat16 (default: the runtime's, int4 on CPU)",
    )
    parser.add_argument(
        "--also-precision",
        default="float32,float16w,int8",
        help="measure prefill/decode again in these precisions, comma-separated ('' to skip)",
    )
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold-load runs")
    args = parser.parse_args()

    def log(line: str) -> None:
        print(f"  {line}", flush=True)

    import torch

    threads = args.threads or torch.get_num_threads()
    options = SimpleNamespace(device="cpu", threads=threads, context_window=None)
    rows: list[Row] = []
    print("Loading ...", flush=True)
    cold = cached = None
    if not args.skip_cold:
        cold, cached = bench_load(args.runs, options, args.precision, log)
        rows += [cold, cached]
    runtime = _load(options, args.precision)
    info = runtime.load_info
    print(
        f"model {runtime.name}: engine {info.engine}, {info.precision}, {info.device}, "
        f"{threads} threads",
        flush=True,
    )
    llama = LlamaCppReference.open(default_gguf_path(), threads)
    own = bench_prefill_decode(runtime, args.runs, log, llama)
    rows += own
    prefill_rows, decode_row = own[: len(PREFILL_SIZES)], own[-2]
    if llama is not None:
        rows += [*llama.prefill.values(), llama.decode]
    with_reuse, without, evictions = bench_chat(
        runtime, args.turns, args.window, args.reply_tokens, log
    )
    rows += [
        Row(f"TTFT per turn, reuse on ({args.turns} turns)", "s", with_reuse),
        Row(f"TTFT per turn, reuse off ({args.turns} turns)", "s", without),
        Row("TTFT last turn, reuse on", "s", with_reuse[-1:]),
        Row("TTFT last turn, reuse off", "s", without[-1:]),
        Row("TTFT total over the chat, reuse on", "s", [sum(with_reuse)]),
        Row("TTFT total over the chat, reuse off", "s", [sum(without)]),
    ]
    runtime.close()
    other_decodes: list[Row] = []
    for precision in [p.strip() for p in args.also_precision.split(",") if p.strip()]:
        if precision == info.precision:
            continue
        try:
            other = _load(options, precision)
        except Exception as exc:  # e.g. float16w without fbgemm: report and go on
            print(f"{precision}: not measured ({exc})", flush=True)
            continue
        print(f"again in {other.load_info.precision}:", flush=True)
        extra = bench_prefill_decode(other, args.runs, log, llama, sizes=(1000,))
        other_decodes.append(extra[1])
        rows += extra
        other.close()

    width = max(len(r.measure) for r in rows)
    print()
    print(f"{'measure':<{width}}  {'min':>8} {'median':>8} {'max':>8} {'n':>3}  unit")
    for row in rows:
        low, mid, high, n = row.cells()
        print(f"{row.measure:<{width}}  {low:>8} {mid:>8} {high:>8} {n:>3}  {row.unit}")
    print()
    print(f"chunked eviction at turns: {', '.join(map(str, evictions)) or 'none'}")
    if cold and cached:
        ratio = _ratio(cached.samples, cold.samples)
        print(f"cached / cold load (median): {ratio:.3f}  (target <= 0.25)")
    ratio = _ratio(with_reuse[-1:], without[-1:])
    print(f"turn-{args.turns} TTFT reuse / no reuse: {ratio:.3f}  (target <= 0.2)")
    if llama is None:
        print("llama.cpp: not measured (llama_cpp not importable)")
    else:
        for size, row in zip(PREFILL_SIZES, prefill_rows, strict=True):
            ratio = _ratio(row.samples, llama.prefill[size].samples)
            print(f"{row.measure} vs llama.cpp (median): {ratio:.2f}  (target >= 1.5)")
        for row in (decode_row, *other_decodes):
            ratio = _ratio(row.samples, llama.decode.samples)
            print(f"{row.measure} vs llama.cpp (median): {ratio:.2f}  (target >= 1.0)")


if __name__ == "__main__":
    main()
