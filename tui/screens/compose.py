"""Long-form composition on the main screen: start one from a dialog, watch it grow, stop, resume.

`ComposeMixin` is mixed into `MainScreen`. A composition runs in its own
exclusive thread worker, which iterates `Agent.compose` (or
`Agent.resume_composition`) and hands each chunk to the event loop: every step
streams into the chat view as a reply does, and becomes a stored reply (with
its trace, so the inspector works on it) when the step is stored. Progress and
the stop reason are shown on the budget bar's status line. Esc cancels through
the run's cancel token; the library stores the partial step and ends with the
stop reason "cancelled".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent import CancelToken, RecursaError
from recursa.agent.compose import DEFAULT_STEP_TOKENS, CompositionChunk, CompositionResult
from recursa.agent.compose.presets import load_presets
from recursa.tui.screens.compose_dialog import ComposeDialog, CompositionRequest
from recursa.tui.widgets.chat import MessageData, MessageView
from textual import work

if TYPE_CHECKING:
    from recursa.agent import CompositionStream
    from recursa.tui.screens.main import MainScreen

STOP_REASONS = {
    "target": "reached its target",
    "stop_string": "a stop string was written",
    "eos": "the model had nothing more to add",
    "repetition": "the model kept repeating itself",
    "cancelled": "stopped",
}


def progress_line(chunk: CompositionChunk, steps: int | None) -> str:
    """'composing 120/1024 tokens · 3 steps · 1 compaction' (short: it shares a line)."""
    parts = [f"composing {chunk.tokens}/{chunk.target_tokens} tokens"]
    if steps is not None:  # unknown on a resume until its first step is stored
        parts.append(f"{steps} step{'' if steps == 1 else 's'}")
    parts.append(f"{chunk.compactions} compaction{'' if chunk.compactions == 1 else 's'}")
    return " · ".join(parts)


def result_line(result: CompositionResult) -> str:
    """'composition ended (target): 1024/1024 tokens · 8 steps'."""
    return (
        f"composition ended ({result.stop_reason}): {result.tokens}/{result.target_tokens} "
        f"tokens · {result.steps} step{'' if result.steps == 1 else 's'}"
    )


def result_message(result: CompositionResult) -> str:
    """The notification when a run ends: why, in words, and what to do next."""
    why = STOP_REASONS.get(result.stop_reason, result.stop_reason)
    text = (
        f"Composition ended: {why} ({result.stop_reason}). {result.tokens} of "
        f"{result.target_tokens} tokens in {result.steps} steps, {result.compactions} "
        "compactions."
    )
    if result.stop_reason == "cancelled":
        text += " Ctrl+G resumes it."
    return text


class ComposeMixin:
    """The "New composition" and "Resume composition" commands and the run they start."""

    _composition_cancel: CancelToken | None = None
    _step_view: MessageView | None = None
    _steps_stored: int | None = None

    @property
    def composing(self) -> bool:
        return self._composition_cancel is not None

    def stop_composition(self) -> None:
        if self._composition_cancel is not None:
            self._composition_cancel.cancel()

    def _can_start(self: MainScreen) -> bool:
        if not self.model_ready:
            self.notify("The model is not loaded yet.", severity="warning")
            return False
        if self.streaming:
            self.notify("Something is still being written; Esc stops it.", severity="warning")
            return False
        return True

    def action_new_composition(self: MainScreen) -> None:
        if not self._can_start():
            return
        presets = [(p.name, p.description) for p in load_presets().values()]

        def answered(request: CompositionRequest | None) -> None:
            if request is not None and self._can_start():
                self._composition_cancel, self._steps_stored = CancelToken(), 0
                self.run_composition(request, None, self._composition_cancel)

        self.app.push_screen(ComposeDialog(presets, step_tokens=DEFAULT_STEP_TOKENS), answered)

    def action_resume_composition(self: MainScreen) -> None:
        conv = self._require_conversation()
        if conv is None or not self._can_start():
            return
        if conv.kind != "composition":
            self.notify("The current conversation is not a composition.", severity="warning")
            return
        cid = conv.id

        def checked(reason: str | None) -> None:
            if reason == "target":
                self.notify("This composition already reached its target.", timeout=5)
            elif self._can_start():
                self._composition_cancel, self._steps_stored = CancelToken(), None
                self.run_composition(None, cid, self._composition_cancel)

        def stop_reason() -> str | None:
            spec = self.agent.composition(cid)
            return spec.stop_reason if spec is not None else None

        self.run_db(stop_reason, checked, "Resume composition")

    @work(thread=True, exclusive=True, group="composition")
    def run_composition(
        self: MainScreen,
        request: CompositionRequest | None,
        resume_id: int | None,
        cancel: CancelToken,
    ) -> None:
        """Start (or resume) a composition and stream it into the chat view, step by step."""
        agent, call = self.agent, self.ui
        stream: CompositionStream
        try:
            if request is not None:
                stream = agent.compose(
                    request.opening,
                    target_tokens=request.target_tokens,
                    step_tokens=request.step_tokens,
                    instructions=request.instructions,
                    preset=request.preset,
                    cancel=cancel,
                )
            else:
                assert resume_id is not None
                stream = agent.resume_composition(resume_id, cancel=cancel)
        except RecursaError as exc:  # bad input or a budget that cannot fit: nothing stored
            call(self.notify, str(exc), title="Composition not started", severity="error")
            call(self._composition_ended, None, None, None)
            return
        self._load(stream.composition_id, None)  # show it, as opening a conversation does
        call(self.refresh_conversations)
        error: str | None = None
        try:
            for chunk in stream:
                call(self._composition_chunk, stream.composition_id, chunk)
        except RecursaError as exc:  # the finished steps are stored; resume goes on
            error = str(exc)
        call(self._composition_ended, stream.composition_id, stream.result, error)

    async def _composition_chunk(self: MainScreen, cid: int, chunk: CompositionChunk) -> None:
        view = self._step_view
        # The user may have opened another conversation meanwhile: then only the status shows.
        if chunk.event == "text" and chunk.text and self.chat.conversation_id == cid:
            if view is None or not view.is_attached:
                placeholder = MessageData(None, None, "assistant", "")
                view = self._step_view = await self.chat.add_message(placeholder)
            await view.append_text(chunk.text)
        elif chunk.event == "compacting":
            self.budget.compacting = True
        elif chunk.event == "step" and chunk.step is not None:
            self.budget.compacting = False
            step = chunk.step
            if view is not None and view.is_attached:
                await view.finish_stream()
                data = MessageData(step.message_id, step.seq, "assistant", step.text, step.status)
                view.update_data(data)
            self._step_view = None
        if chunk.step is not None:
            self._steps_stored = chunk.step.index
        self.budget.status = progress_line(chunk, self._steps_stored)

    async def _composition_ended(
        self: MainScreen, cid: int | None, result: CompositionResult | None, error: str | None
    ) -> None:
        self._composition_cancel = None
        self.budget.compacting = False
        view, self._step_view = self._step_view, None
        if view is not None and view.is_attached:
            await view.finish_stream()
        if error:
            self.notify(error, title="Composition failed", severity="error", timeout=10)
            self.budget.status = "composition failed · Ctrl+G resumes it"
            if self.conversation is not None and self.conversation.id == cid:
                self.load_conversation(cid, None)  # show the steps as they were stored
        if result is None:
            return
        self.budget.status = result_line(result)
        self.notify(result_message(result), title="Composition", timeout=8)
        # The step views already hold the stored steps; not reloading keeps this line
        # on the status bar (a reload previews the next prompt, which clears it).
        self.refresh_conversations()
