"""Composition benchmark: diversity and speed of long texts, truncation vs summary + tail.

Run: python -m benchmarks.compose [--target 2048] [--budget 512] [--step 128] [--threads 1]

With the real SmolLM2-135M model and a small prompt budget, it composes the
same opening to `--target` tokens four ways: (a) plain truncation (the prompt
keeps only the newest steps that fit: the "window" policy) and (b) recursa's
running summary + verbatim tail, each with and without the repetition control
(the loop guard that turns on a repetition penalty and n-gram blocking for the
next step when a step re-uses what was written, and stops with "repetition"
when that does not help). Without the control, decoding uses no repetition
penalty at all, so the table shows what the control itself changes.

Reported per run: distinct-2 and distinct-3 (distinct word n-grams / all word
n-grams of the generated text), the longest word n-gram that occurs twice,
tokens/s over the whole composition (prefill, decoding and summarization),
the stop reason, steps and compactions. Decoding is greedy unless
--temperature is given, so runs are repeatable. Not a timed test: read the
ratios, not the absolute speeds (they vary with the machine's load).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from recursa.agent import Agent
from recursa.agent.compose.repetition import distinct_n, longest_repeated_ngram, words
from recursa.agent.runtime.options import RuntimeOptions
from recursa.agent.runtime.protocol import GenerationParams, Runtime

OPENING = "Today the weather"
INSTRUCTIONS = (
    "You are a writer. You continue a text about the weather and the people of a small "
    "seaside town. Each reply is the next part, with new details and events."
)


@dataclass
class Row:
    memory: str
    control: bool
    tokens: int
    seconds: float
    distinct2: float
    distinct3: float
    longest: int
    stop_reason: str
    steps: int
    compactions: int
    max_prompt: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class _Shared:
    """The loaded model, handed to each Agent without being closed by it."""

    def __init__(self, inner: Runtime) -> None:
        self._inner = inner

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def context_window(self) -> int:
        return self._inner.context_window

    @property
    def tokenizer_id(self) -> str:
        return self._inner.tokenizer_id

    def count_tokens(self, messages):  # type: ignore[no-untyped-def]
        return self._inner.count_tokens(messages)

    def count_text(self, text: str) -> int:
        return self._inner.count_text(text)

    def stream(self, messages, params=None, **kw):  # type: ignore[no-untyped-def]
        return self._inner.stream(messages, params, **kw)

    def close(self) -> None:
        return None


def run_one(
    runtime: Runtime, *, memory: str, control: bool, args: argparse.Namespace, folder: Path
) -> Row:
    url = f"sqlite:///{folder / f'{memory}-{int(control)}.db'}"
    policy = "window" if memory == "truncation" else "summary"
    params = GenerationParams(temperature=args.temperature, top_p=1.0, repetition_penalty=1.0)
    with Agent.open(
        url,
        _Shared(runtime),
        max_prompt_tokens=args.budget,  # type: ignore[arg-type]
        policy=policy,
    ) as agent:
        started = time.perf_counter()
        stream = agent.compose(
            OPENING,
            target_tokens=args.target,
            step_tokens=args.step,
            instructions=INSTRUCTIONS,
            seed=args.seed,
            params=params,
            repetition=control,
        )
        for chunk in stream:
            if chunk.event == "step" and chunk.step is not None and args.verbose:
                print(
                    f"  [{memory} control={control}] step {chunk.step.index}: "
                    f"{chunk.tokens}/{args.target} tokens, prompt {chunk.step.prompt_tokens}",
                    flush=True,
                )
        seconds = time.perf_counter() - started
        result = stream.result
        assert result is not None
        text_words = words(result.text)
        max_prompt = max(t.total_tokens for t in agent.traces(result.composition_id))
        if args.show_text:
            print(f"--- {memory}, control={control} ---\n{result.text[:1500]}\n", flush=True)
        return Row(
            memory=memory,
            control=control,
            tokens=result.tokens,
            seconds=seconds,
            distinct2=distinct_n(text_words, 2),
            distinct3=distinct_n(text_words, 3),
            longest=longest_repeated_ngram(text_words),
            stop_reason=result.stop_reason,
            steps=result.steps,
            compactions=result.compactions,
            max_prompt=max_prompt,
        )


def table(rows: list[Row], args: argparse.Namespace) -> str:
    head = (
        f"Composition benchmark: SmolLM2-135M, budget {args.budget}, target {args.target} "
        f"tokens, step {args.step}, temperature {args.temperature}, threads {args.threads}"
    )
    lines = [
        head,
        "",
        "| prompt memory        | repetition control | tokens | distinct-2 | distinct-3 | "
        "longest repeat (words) | tokens/s | stop reason | steps | compactions | max prompt |",
        "|----------------------|--------------------|-------:|-----------:|-----------:|"
        "-----------------------:|---------:|-------------|------:|------------:|-----------:|",
    ]
    for r in rows:
        memory = "(a) truncation" if r.memory == "truncation" else "(b) summary + tail"
        lines.append(
            f"| {memory:<20} | {'on' if r.control else 'off':<18} | {r.tokens:>6} | "
            f"{r.distinct2:>10.3f} | {r.distinct3:>10.3f} | {r.longest:>22} | "
            f"{r.tokens_per_s:>8.2f} | {r.stop_reason:<11} | {r.steps:>5} | "
            f"{r.compactions:>11} | {r.max_prompt:>10} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", type=int, default=2048, help="tokens of text to generate")
    parser.add_argument("--budget", type=int, default=512, help="prompt budget (tokens)")
    parser.add_argument("--step", type=int, default=128, help="tokens per step")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 is fastest on a machine shared with others)",
    )
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy decoding")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--only", choices=("truncation", "summary"), default=None, help="run one prompt memory only"
    )
    parser.add_argument("--verbose", action="store_true", help="print every step")
    parser.add_argument("--show-text", action="store_true", help="print each text's start")
    args = parser.parse_args(argv)

    from recursa.agent.runtime.local import load_local

    runtime = load_local(name="smollm2-135m", options=RuntimeOptions(threads=args.threads))
    rows: list[Row] = []
    memories = [args.only] if args.only else ["truncation", "summary"]
    try:
        with tempfile.TemporaryDirectory(prefix="recursa-bench-compose-") as tmp:
            for memory in memories:
                for control in (False, True):
                    row = run_one(
                        runtime, memory=memory, control=control, args=args, folder=Path(tmp)
                    )
                    rows.append(row)
                    print(
                        f"done: {memory}, control={control}: {row.tokens} tokens in "
                        f"{row.seconds:.0f} s ({row.stop_reason})",
                        flush=True,
                    )
                    if len(rows) < 2 * len(memories):  # a long run shows what it has so far
                        print(table(rows, args) + "\n", flush=True)
    finally:
        runtime.close()
    print()
    print(table(rows, args))


if __name__ == "__main__":
    main()
