"""The summaries benchmark's command line: run configurations, or print the table."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("benchmarks/summaries/results.jsonl")
SETTINGS = ("conversation", "5000", "20000", "50000")
KINDS = ("extractive", "model", "facts")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.summaries",
        description="Share of planted facts kept by each summarizer (SmolLM2-135M). Without "
        "a command: every setting and summarizer in one process (slow), then the table.",
    )
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="measure one setting with one summarizer")
    run.add_argument("--setting", required=True, choices=SETTINGS)
    run.add_argument("--summarizer", required=True, choices=KINDS)
    report = sub.add_parser("report", help="print the rows measured so far")
    for p in (parser, run, report):
        p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines results file")
    for p in (parser, run):
        p.add_argument("--budget", type=int, default=1024, help="conversation prompt budget")
        p.add_argument("--exchanges", type=int, default=60, help="conversation exchanges")
        p.add_argument("--target", type=int, default=256, help="document summary tokens")
        p.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "report":
        print_table(args.out)
        return
    if args.command == "run":
        plan = [(args.setting, args.summarizer)]
    else:
        plan = [(s, k) for s in SETTINGS for k in KINDS]
        args.out.unlink(missing_ok=True)
    model = _model(args.threads)
    for setting, kind in plan:
        _measure(model, setting, kind, args)
    if args.command is None:
        print_table(args.out)


def _model(threads: int) -> Any:
    from recursa.agent.runtime.local import load_local
    from recursa.agent.runtime.options import RuntimeOptions

    from benchmarks.summaries import run as r

    return r.Kept(load_local(name="smollm2-135m", options=RuntimeOptions(threads=threads)))


def _measure(model: Any, setting: str, kind: str, args: argparse.Namespace) -> None:
    from benchmarks.summaries import run as r

    if setting == "conversation":
        row = r.conversation(kind, model, exchanges=args.exchanges, budget=args.budget)
    else:
        row = r.doc(kind, model, tokens=int(setting), target=args.target)
    r.append(args.out, row)
    print(json.dumps({**row.__dict__, "share": round(row.share, 3)}), flush=True)


def print_table(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    print(
        "| setting | summarizer | planted facts kept | share | summary tokens | model calls "
        "| seconds | detail |"
    )
    print("|" + "---|" * 8)
    for row in rows:
        print(
            f"| {row['setting']} | {row['summarizer']} | {row['present']}/{row['planted']} | "
            f"{row['share']:.2f} | {row['summary_tokens']} | {row['calls']} | "
            f"{row['seconds']} | {row['detail']} |"
        )
