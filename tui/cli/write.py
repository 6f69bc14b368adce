"""`recursa write`: compose a long text step by step, streamed to stdout, progress on stderr.

    recursa write "Today the weather" --tokens 2000
    echo "Once upon a time" | recursa write --tokens 800 --step 64
    recursa write --preset story --tokens 1500
    recursa write --resume 12

The text goes to stdout (the opening first, then each step as it is
generated), so it can be piped or redirected; progress (tokens so far /
target, compactions) and the final stop reason go to stderr. Ctrl-C stops
after storing what was written; `--resume ID` continues from the last stored
step.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import click
from recursa.tui.cli.common import (
    DB_HELP,
    ID,
    CliError,
    for_terminal,
    model_option,
    open_agent,
    state,
)

if TYPE_CHECKING:
    from recursa.agent import CompositionResult, CompositionStream

INTERRUPTED_EXIT = 130


class _DefaultFrom(click.Option):
    """An option whose default is looked up when it is needed (to parse or to show it).

    The default step size lives with the composition code; looking it up only
    then keeps `recursa --help` from importing that code.
    """

    def __init__(self, *args: Any, default_from: Callable[[], Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._default_from = default_from

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        return self._default_from()


def _default_step_tokens() -> int:
    from recursa.agent.compose import DEFAULT_STEP_TOKENS

    return DEFAULT_STEP_TOKENS


class _Progress:
    """Progress on stderr, in the form that does not garble the text on stdout.

    stderr not a terminal (a log): one line per step. stderr a terminal and the
    text redirected: one status line rewritten in place. Both on the terminal:
    the status goes to the terminal's title, so it never cuts into the text.
    """

    def __init__(self, err: IO[str], out: IO[str], composition_id: int) -> None:
        self._err = err
        self._mode = "lines" if not err.isatty() else "title" if out.isatty() else "status"
        self._id = composition_id
        self._shown = False

    def update(self, tokens: int, target: int, compactions: int, steps: int, *, event: str) -> None:
        line = (
            f"[composition {self._id}] {tokens}/{target} tokens, step {steps}, "
            f"{compactions} compaction{'s' if compactions != 1 else ''}"
            + (" (compacting…)" if event == "compacting" else "")
        )
        if self._mode == "status":
            self._err.write("\r\x1b[2K" + line)
            self._shown = True
        elif self._mode == "title":
            self._err.write(f"\x1b]0;recursa write: {line}\x07")
            self._shown = True
        elif event == "step":
            self._err.write(line + "\n")
        self._err.flush()

    def end(self, text: str) -> None:
        if self._shown and self._mode == "status":
            self._err.write("\r\x1b[2K")
        elif self._shown and self._mode == "title":
            self._err.write("\x1b]0;recursa\x07")
        if text:
            self._err.write(text + "\n")
        self._err.flush()


@click.command("write")
@click.argument("text", required=False)
@click.option(
    "--tokens",
    "-n",
    "tokens",
    type=int,
    default=None,
    help="How many tokens of new text to write (required unless --resume).",
)
@click.option(
    "--step",
    "step",
    type=int,
    cls=_DefaultFrom,
    default_from=_default_step_tokens,
    show_default=True,
    help="At most this many tokens per step.",
)
@click.option(
    "--instructions",
    "-i",
    default=None,
    help="What to write (default: the preset's, or continue the text).",
)
@click.option(
    "--preset", "-p", default=None, help="A named starting point: weather, story, article, report."
)
@click.option("--stop", "stop", multiple=True, help="Stop when this text is written (repeatable).")
@click.option("--seed", type=int, default=None, help="Sampling seed, for repeatable text.")
@click.option(
    "--no-repetition-control",
    is_flag=True,
    default=False,
    help="Do not watch for loops (no penalty escalation, no 'repetition' stop).",
)
@model_option
@click.option("--db", "db_url", metavar="URL", default=None, help=DB_HELP)
@click.option(
    "--resume",
    "resume_id",
    type=ID,
    default=None,
    help="Continue the composition with this id from its last stored step.",
)
def write(
    text: str | None,
    tokens: int | None,
    step: int,
    instructions: str | None,
    preset: str | None,
    stop: tuple[str, ...],
    seed: int | None,
    no_repetition_control: bool,
    model: str | None,
    db_url: str | None,
    resume_id: int | None,
) -> None:
    """Write a long text that grows past the model's context, from its own summary.

    TEXT is the opening (read from stdin when it is not given and stdin is not a
    terminal); without it, the text starts from the preset or from nothing.
    The text goes to stdout; progress and the stop reason go to stderr.
    """
    if resume_id is not None:
        if text is not None or preset is not None or instructions is not None or stop:
            raise click.UsageError(
                "--resume continues a stored composition with its own text, instructions, "
                "preset and stop strings; give only --resume ID (and --tokens to raise the "
                "target)."
            )
    elif tokens is None:
        raise click.UsageError("Say how much to write with --tokens N (or use --resume ID).")
    elif text is None and sys.stdin is not None and not sys.stdin.closed and not sys.stdin.isatty():
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise click.UsageError(
                f"Standard input is not UTF-8 text (byte {exc.start}); pipe UTF-8 text."
            ) from exc
    if db_url is not None:
        state().db_url = db_url
    out = sys.stdout
    err = sys.stderr
    started = resume_id is not None  # a new composition exists once compose() returns
    try:
        with open_agent(model=model, conversation_id=resume_id) as agent:
            if resume_id is not None:
                stream = agent.resume_composition(resume_id, target_tokens=tokens)
            else:
                assert tokens is not None
                # compose() checks every input (and loads the model) before it stores anything.
                stream = agent.compose(
                    text or None,
                    target_tokens=tokens,
                    step_tokens=step,
                    instructions=instructions,
                    stop=stop or None,
                    seed=seed,
                    preset=preset,
                    repetition=not no_repetition_control,
                )
                started = True
                for message in agent.messages(stream.composition_id, limit=2):
                    if message.role == "user":  # the opening: stdout carries the whole text
                        out.write(for_terminal(message.content, out))
                        out.flush()
            result = _pump(stream, out, err)
    except CliError as exc:
        if started or "stored" in exc.message:
            raise
        raise CliError(f"{exc.message.rstrip()} Nothing was stored.", exc.exit_code) from exc
    if result.stop_reason == "cancelled":
        raise CliError("Cancelled; what was written is stored.", INTERRUPTED_EXIT)


def _pump(stream: CompositionStream, out: IO[str], err: IO[str]) -> CompositionResult:
    progress = _Progress(err, out, stream.composition_id)
    steps = 0
    try:
        for chunk in stream:
            if chunk.event == "text":
                out.write(for_terminal(chunk.text, out))
                out.flush()
                continue
            if chunk.step is not None:
                steps = chunk.step.index
            if chunk.event in ("step", "compacting"):
                progress.update(
                    chunk.tokens, chunk.target_tokens, chunk.compactions, steps, event=chunk.event
                )
    except KeyboardInterrupt:
        stream.close()  # the partial step is stored as interrupted
        out.write("\n")
        out.flush()
        progress.end("")
        raise CliError(
            "Interrupted; what was written is stored. Continue with: "
            f"recursa write --resume {stream.composition_id}",
            INTERRUPTED_EXIT,
        ) from None
    result = stream.result
    assert result is not None
    out.write("\n")
    out.flush()
    progress.end(
        f"Stopped: {result.stop_reason} ({result.tokens}/{result.target_tokens} tokens, "
        f"{result.steps} steps, {result.compactions} compactions); composition "
        f"{result.composition_id}."
    )
    return result
