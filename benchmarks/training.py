"""Training benchmark: fine-tuning throughput (tokens/s) and peak memory, with and without
gradient checkpointing, for the default SmolLM2-135M.

Run: python -m benchmarks.training [--steps N] [--batch-size B] [--seq-len L]
                                   [--device cpu|cuda|auto] [--threads T]

Each configuration runs `recursa.agent.training.finetune` (the real loop:
forward, backward, clipping, AdamW step, schedule) in its own subprocess, so
the peak resident memory it reports belongs to that configuration alone. The
first step is a warm-up and is not counted. Tokens are all non-padding tokens
of a step (prompt and reply), the usual throughput measure. Not a timed test:
figures vary with the machine, so read medians and the ratio between rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

VOCABULARY = (
    "memory summary window token budget prompt model reply turn context history recall "
    "search index store message conversation agent user assistant system recursive lighthouse "
    "harbour garden kettle violet teapot archive river mountain lantern"
)
WORDS = tuple(VOCABULARY.split())


def _text(n_words: int, seed: int) -> str:
    return " ".join(WORDS[(seed * 7 + i * 13) % len(WORDS)] for i in range(n_words))


def make_examples(count: int, seq_len: int) -> list[dict[str, Any]]:
    """Recursive-prompt-shaped examples (summary, window, question, reply) near seq_len tokens."""
    words = max(8, int(seq_len * 0.6))  # about 1.3 tokens a word for this vocabulary
    examples = []
    for i in range(count):
        examples.append(
            {
                "messages": [
                    {
                        "role": "system",
                        "content": "You are helpful. Summary so far: " + _text(words // 2, i),
                    },
                    {"role": "user", "content": _text(words // 4, i + 1)},
                    {"role": "assistant", "content": _text(words // 8, i + 2)},
                    {"role": "user", "content": "And then?"},
                    {"role": "assistant", "content": _text(words // 8, i + 3)},
                ]
            }
        )
    return examples


def worker(args: argparse.Namespace) -> None:
    """Run one configuration and print its figures as one JSON line."""
    import torch
    from recursa.agent.training.finetune import FinetuneConfig, TrainEvent, finetune

    samples: list[float] = []
    tokens: list[int] = []
    threads = args.threads or torch.get_num_threads()  # finetune restores the setting after

    def on_event(event: TrainEvent) -> None:
        if event.kind == "step" and event.tokens_per_s is not None:
            samples.append(event.tokens_per_s)

    with tempfile.TemporaryDirectory(prefix="recursa-bench-train-") as scratch:
        data = Path(scratch) / "data.jsonl"
        steps = args.steps + 1  # one warm-up step
        examples = make_examples(steps * args.batch_size, args.seq_len)
        data.write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
        config = FinetuneConfig(
            data=data,
            out=Path(scratch) / "out",
            max_steps=steps,
            batch_size=args.batch_size,
            max_tokens=args.seq_len,
            eval_split=0.0,
            lr=1e-5,
            gradient_checkpointing=args.gradient_checkpointing,
        )
        result = finetune(config, device=args.device, threads=args.threads, on_event=on_event)
        tokens.append(result.tokens_seen // max(1, result.steps))
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch_peak = None
    if result.device == "cuda":
        torch_peak = torch.cuda.max_memory_allocated() / 2**20
    print(
        json.dumps(
            {
                "gc": args.gradient_checkpointing,
                "samples": samples[1:],
                "tokens_per_step": tokens[0],
                "peak_rss_mib": peak_rss_mib,
                "torch_peak_mib": torch_peak,
                "device": result.device,
                "threads": threads,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="Measured steps per configuration.")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256, help="Tokens per example (max).")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--gradient-checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    rows = []
    load_before = os.getloadavg()[0]
    for gc in (False, True):
        command = [
            sys.executable,
            "-m",
            "benchmarks.training",
            "--worker",
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--seq-len",
            str(args.seq_len),
            "--device",
            args.device,
        ]
        if args.threads:
            command += ["--threads", str(args.threads)]
        if gc:
            command.append("--gradient-checkpointing")
        env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            sys.exit(f"worker failed (gradient checkpointing={gc}):\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first = rows[0]
    print(
        f"Fine-tuning SmolLM2-135M, fp32, device {first['device']}, {first['threads']} "
        f"threads, batch {args.batch_size} x up to {args.seq_len} tokens "
        f"({first['tokens_per_step']} tokens/step), {args.steps} measured steps after 1 "
        "warm-up, AdamW\n"
    )
    header = (
        f"{'gradient checkpointing':<24}{'tok/s min':>11}{'median':>9}{'max':>9}"
        f"{'peak RSS MiB':>14}{'torch peak MiB':>16}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        s = row["samples"]
        torch_peak = f"{row['torch_peak_mib']:.0f}" if row["torch_peak_mib"] else "n/a (CPU)"
        print(
            f"{'on' if row['gc'] else 'off':<24}{min(s):>11.1f}{statistics.median(s):>9.1f}"
            f"{max(s):>9.1f}{row['peak_rss_mib']:>14.0f}{torch_peak:>16}"
        )
    off, on = (statistics.median(r["samples"]) for r in rows)
    print(
        f"\nthroughput with checkpointing / without: {on / off:.2f}; peak RSS "
        f"{rows[1]['peak_rss_mib'] / rows[0]['peak_rss_mib']:.2f}x"
    )
    # Other processes on the machine change these figures a lot; say how busy it was.
    print(
        f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
