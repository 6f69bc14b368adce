"""The summaries benchmark's command line: run one configuration, or print the table."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

DEFAULT_OUT = Path("benchmarks/summaries/results.jsonl")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.summaries")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="measure one setting with one summarizer")
    run.add_argument("--setting", required=True, help="conversation, or a document size")
    run.add_argument("--summarizer", required=True, choices=("extractive", "model", "facts"))
    run.add_argument("--budget", type=int, default=1024, help="conversation prompt budget")
    run.add_argument("--exchanges", type=int, default=60, help="conversation exchanges")
    run.add_argument("--target", type=int, default=256, help="document summary tokens")
    run.add_argument("--threads", type=int, default=2)
    run.add_argument("--out", type=Path, default=DEFAULT_OUT)
    report = sub.add_parser("report", help="print the rows measured so far")
    report.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.command == "report":
        print_table(args.out)
        return
    from recursa.agent.runtime.local import load_local
    from recursa.agent.runtime.options import RuntimeOptions

    from benchmarks.summaries import run as r

    model = r.Kept(load_local(name="smollm2-135m", options=RuntimeOptions(threads=args.threads)))
    if args.setting == "conversation":
        row = r.conversation(args.summarizer, model, exchanges=args.exchanges, budget=args.budget)
    else:
        row = r.doc(args.summarizer, model, tokens=int(args.setting), target=args.target)
    r.append(args.out, row)
    print(json.dumps({**row.__dict__, "share": round(row.share, 3)}))


def print_table(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    header = (
        "| setting | summarizer | planted facts kept | share | summary tokens | model calls "
        "| seconds | detail |"
    )
    print(header)
    print("|" + "---|" * 8)
    for row in rows:
        print(
            f"| {row['setting']} | {row['summarizer']} | {row['present']}/{row['planted']} | "
            f"{row['share']:.2f} | {row['summary_tokens']} | {row['calls']} | "
            f"{row['seconds']} | {row['detail']} |"
        )
