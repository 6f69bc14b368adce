"""`recursa dataset export`, `recursa finetune` and `recursa rate`: learning from stored replies.

These commands are thin: the work is in `recursa.agent.training`. torch and
transformers load only when `finetune` runs.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from recursa.tui.cli.common import (
    ID,
    open_agent,
    refuse_existing,
    translate_errors,
    write_whole,
)

DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]


@click.group("dataset")
def dataset() -> None:
    """Turn stored replies into training data."""


@dataset.command("export")
@click.option(
    "-c",
    "--conversation",
    "conversation_ids",
    type=ID,
    multiple=True,
    metavar="ID",
    help="Export this conversation (repeat for several).",
)
@click.option("--all", "export_all", is_flag=True, help="Every conversation, archived included.")
@click.option(
    "--since",
    type=click.DateTime(DATE_FORMATS),
    default=None,
    metavar="DATE",
    help="Only replies created at or after DATE (local time, e.g. 2026-11-01).",
)
@click.option("--only-rated", is_flag=True, help="Only replies rated good (see `recursa rate`).")
@click.option(
    "--include-failed",
    is_flag=True,
    help="Keep replies that ended in an error or were interrupted.",
)
@click.option("--include-bad", is_flag=True, help="Keep replies rated bad.")
@click.option("--no-dedupe", is_flag=True, help="Keep identical examples more than once.")
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="FILE.jsonl",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Where to write the JSONL ('-' for standard output).",
)
@click.option("--force", is_flag=True, help="Overwrite FILE.jsonl if it exists.")
def export_command(
    conversation_ids: tuple[int, ...],
    export_all: bool,
    since: datetime | None,
    only_rated: bool,
    include_failed: bool,
    include_bad: bool,
    no_dedupe: bool,
    output: Path,
    force: bool,
) -> None:
    """Write one {"messages": [...]} example per stored reply: the prompt exactly as the
    model saw it (its prompt trace), then the reply."""
    if export_all == bool(conversation_ids):
        raise click.UsageError("Give --conversation ID (one or more) or --all (not both).")
    to_stdout = str(output) == "-"
    if not to_stdout:
        refuse_existing(output, force)
    import json

    from recursa.agent.training import ExportReport

    report = ExportReport()
    with open_agent() as agent:
        examples = agent.export_dataset(
            conversation_ids=list(conversation_ids) or None,
            since=since.astimezone() if since is not None else None,  # naive = local time
            only_rated=only_rated,
            include_failed=include_failed,
            include_bad=include_bad,
            dedupe=not no_dedupe,
            report=report,
        )
    text = "".join(json.dumps(example, ensure_ascii=False) + "\n" for example in examples)
    if to_stdout:
        click.echo(text, nl=False)
    else:
        write_whole(output, text)  # whole or not at all: a temporary file, then a rename
    click.echo(report.summary() + ("" if to_stdout else f" to {output}."), err=True)


@click.command("rate")
@click.argument("message_id", type=ID)
@click.argument("verdict", type=click.Choice(["good", "bad", "clear"]))
def rate_command(message_id: int, verdict: str) -> None:
    """Rate a reply good or bad (or clear its rating); `dataset export --only-rated` keeps
    the good ones and every export drops the bad ones."""
    from recursa.agent.training import rating_label

    good = {"good": True, "bad": False, "clear": None}[verdict]
    with open_agent() as agent:
        message = agent.rate(message_id, good)
    click.echo(f"Message {message.id} is now {rating_label(message.rating)}.")


@click.command("finetune")
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.jsonl",
    help="Training data from `recursa dataset export`.",
)
@click.option(
    "-m",
    "--model",
    "base",
    default=None,
    metavar="BASE",
    help="Base model: smollm2-135m (default), a model folder, a .gguf file or a "
    "cached Hugging Face id.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="New folder for the fine-tuned model (must not exist).",
)
@click.option(
    "--resume",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Continue the interrupted run in DIR from its checkpoint.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Total optimizer steps (overrides --epochs).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=5e-5,
    show_default=True,
    help="Peak learning rate.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--grad-accum",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Batches accumulated per optimizer step.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=16),
    default=1024,
    show_default=True,
    help="Longest example (prompt and reply).",
)
@click.option(
    "--overflow",
    type=click.Choice(["truncate", "skip"]),
    default="truncate",
    show_default=True,
    help="Longer examples: cut the prompt from the left (keeping the system "
    "message), or skip them. Both are counted.",
)
@click.option(
    "--eval-split",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Held-out fraction for the before/after eval loss.",
)
@click.option("--warmup-ratio", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option(
    "--schedule",
    type=click.Choice(["cosine", "linear", "constant"]),
    default="cosine",
    show_default=True,
)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option(
    "--max-grad-norm", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--gradient-checkpointing",
    is_flag=True,
    help="Recompute activations in the backward pass: less memory, slower.",
)
@click.option(
    "--save-every",
    type=click.IntRange(min=1),
    default=None,
    help="Checkpoint every N steps (a checkpoint is also written each epoch).",
)
@click.option(
    "--stop-after",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Stop after N steps with a checkpoint (continue with --resume).",
)
@click.option(
    "--keep-checkpoint",
    is_flag=True,
    help="Keep DIR/checkpoint after the run finishes (optimizer state included).",
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads.")
def finetune_command(
    data: Path | None,
    base: str | None,
    out: Path | None,
    resume: Path | None,
    stop_after: int | None,
    keep_checkpoint: bool,
    device: str,
    threads: int | None,
    **hyper: Any,
) -> None:
    """Fine-tune the local model on a JSONL dataset: loss on reply tokens only, eval loss
    before and after, a resumable checkpoint, and a model folder for `recursa chat -m DIR`."""
    from recursa.agent.training.finetune import (
        FinetuneConfig,
        finetune,
        quiet_transformers_progress,
        resume_finetune,
    )

    if resume is not None:
        ctx = click.get_current_context()
        fixed = {"data", "out", "base", *hyper}
        given = [
            param.opts[-1]
            for param in ctx.command.params
            if param.name in fixed
            and ctx.get_parameter_source(param.name) != click.core.ParameterSource.DEFAULT
        ]
        if given:
            raise click.UsageError(
                "--resume DIR continues a run with its own data, model and settings; "
                f"do not combine it with {', '.join(given)}."
            )
    elif data is None or out is None:
        raise click.UsageError("Give --data FILE.jsonl and --out DIR (or --resume DIR).")
    quiet_transformers_progress()  # its bars would interleave with ours
    reporter = _Reporter()
    target = resume if resume is not None else out
    assert target is not None
    try:
        with translate_errors(), reporter:
            if resume is not None:
                result = resume_finetune(
                    resume,
                    device=device,
                    threads=threads,
                    stop_after_steps=stop_after,
                    keep_checkpoint=keep_checkpoint,
                    on_event=reporter,
                )
            else:
                config = FinetuneConfig(data=data, out=out, base=base, **hyper)
                result = finetune(
                    config,
                    device=device,
                    threads=threads,
                    stop_after_steps=stop_after,
                    keep_checkpoint=keep_checkpoint,
                    on_event=reporter,
                )
    except KeyboardInterrupt:
        click.echo(
            f"Interrupted. The last completed step is saved in {target}/checkpoint; "
            f"continue with: recursa finetune --resume {target}",
            err=True,
        )
        sys.exit(130)
    before, after = result.eval_loss_before, result.eval_loss_after
    if not result.finished:
        click.echo(
            f"Stopped after step {result.steps}/{result.total_steps}; continue with: "
            f"recursa finetune --resume {target}"
        )
        return
    line = f"Trained {result.steps} step(s) on {result.train_examples} example(s)"
    if before is not None and after is not None:
        line += f"; eval loss {before:.4f} -> {after:.4f} ({result.eval_examples} held out)"
    click.echo(line + ".")
    click.echo(f"Model saved to {target}. Use it with: recursa chat -m {target}")


class _Reporter:
    """Training events on stderr: a rich progress bar on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _Reporter:
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, event: Any) -> None:
        if event.kind == "message":
            self.console.print(event.text)
        elif event.kind == "eval":
            self.console.print(f"eval loss {event.text}: {event.loss:.4f}")
        elif event.kind == "step":
            stats = f"loss {event.loss:.4f} lr {event.lr:.2e}"
            if event.tokens_per_s:
                stats += f" {event.tokens_per_s:.0f} tok/s"
            if self.progress is None:
                self.console.print(f"step {event.step}/{event.total_steps} {stats}")
                return
            if self.task is None:
                self.task = self.progress.add_task(
                    "train", total=event.total_steps, completed=event.step - 1, stats=""
                )
            self.progress.update(self.task, completed=event.step, stats=stats)
