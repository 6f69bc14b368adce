"""The Agent's turn methods: send, stream, answer a stored message, regenerate, async twins.

`TurnsMixin` is one part of `recursa.agent.agent.Agent`. Every turn goes
through `_turn`, which runs `recursa.agent.turns.run_turn` with the agent's
model, summarizer, vector index and background worker, and logs a failed reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import TYPE_CHECKING

from recursa.agent.checks import check_id, check_text
from recursa.agent.errors import RecursaError
from recursa.agent.facade.background import TurnBackground
from recursa.agent.facade.base import AgentBase, log
from recursa.agent.runtime.protocol import CancelToken
from recursa.agent.streams import AsyncReplyStream, ReplyStream, skip_placeholders
from recursa.agent.turn_lease import STORED_TTL, new_lease
from recursa.agent.turns import TurnFailedError, run_turn

if TYPE_CHECKING:
    from recursa.agent.boundary import MessageInfo, Reply, StreamChunk
    from recursa.agent.runtime.protocol import GenerationParams

__all__ = ["TurnsMixin"]


class TurnsMixin(AgentBase):
    """Chat turns: each commits the user message, streams the reply and stores it with its trace."""

    # turns ----------------------------------------------------------------------------------

    def send(
        self,
        conversation_id: int,
        text: str,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> Reply:
        """Run one turn and return the stored Reply.

        Raises InvalidInputError (empty text), BudgetError (the message cannot fit
        even alone; nothing is stored), NotFoundError (unknown conversation), and
        TurnFailedError when the model fails mid-reply (the user message and an
        error reply are stored; the conversation stays usable).
        """
        stream = self.stream(conversation_id, text, params=params, cancel=cancel)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    def stream(
        self,
        conversation_id: int,
        text: str,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> ReplyStream:
        """Run one turn as a stream of chunks; the last chunk carries the Reply.

        Input is validated and the user message committed before this returns,
        so errors such as BudgetError are raised here, not mid-iteration.
        """
        conversation_id = check_id(conversation_id, "conversation_id")
        token = cancel or CancelToken()
        gen = self._turn(conversation_id, text, params=params, cancel=token)
        next(gen)  # run up to the committed user message (validation errors surface now)
        return ReplyStream(skip_placeholders(gen), token)

    def add_message(self, conversation_id: int, text: str) -> MessageInfo:
        """Store a user message now and answer it later (`answer` / `stream_answer`).

        For a message typed before the model is ready: it is committed at once,
        without loading the model, so it is never lost. Its size is checked
        against the budget when it is answered. InvalidInputError for empty text,
        NotFoundError for an unknown conversation.
        """
        text = check_text(text)
        self._store.get_conversation(conversation_id)
        # Claimed for this process until it is answered (or the process stops), so a
        # turn elsewhere does not take it for a message whose reply was lost.
        return self._store.append_message(
            conversation_id, "user", text, lease=new_lease(STORED_TTL)
        )

    def answer(
        self,
        conversation_id: int,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> Reply:
        """Reply to the conversation's last message, a user message stored by `add_message`.

        InvalidInputError when the last message is not an unanswered user message.
        """
        stream = self.stream_answer(conversation_id, params=params, cancel=cancel)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    def stream_answer(
        self,
        conversation_id: int,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> ReplyStream:
        """Streaming twin of `answer`."""
        token = cancel or CancelToken()
        gen = self._turn(conversation_id, None, params=params, cancel=token, answer_stored=True)
        next(gen)
        return ReplyStream(skip_placeholders(gen), token)

    def regenerate(
        self,
        conversation_id: int,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> Reply:
        """Answer the last user message again; earlier replies to it are marked superseded."""
        stream = self.stream_regenerate(conversation_id, params=params, cancel=cancel)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    def stream_regenerate(
        self,
        conversation_id: int,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> ReplyStream:
        """Streaming twin of `regenerate`."""
        conversation_id = check_id(conversation_id, "conversation_id")
        token = cancel or CancelToken()
        gen = self._turn(conversation_id, None, params=params, cancel=token)
        next(gen)
        return ReplyStream(skip_placeholders(gen), token)

    async def asend(
        self,
        conversation_id: int,
        text: str,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> Reply:
        """`send` in a worker thread, so the event loop keeps running.

        Cancelling the awaiting task cancels the generation too (the partial
        reply is stored as interrupted).
        """
        token = cancel or CancelToken()
        try:
            return await asyncio.to_thread(
                self.send, conversation_id, text, params=params, cancel=token
            )
        except asyncio.CancelledError:
            token.cancel()
            raise

    async def astream(
        self,
        conversation_id: int,
        text: str,
        *,
        params: GenerationParams | None = None,
        cancel: CancelToken | None = None,
    ) -> AsyncReplyStream:
        """`stream` for asyncio: `async for chunk in await agent.astream(cid, text)`."""
        sync = await asyncio.to_thread(
            self.stream, conversation_id, text, params=params, cancel=cancel
        )
        return AsyncReplyStream(sync)

    def window_notice(self) -> str | None:
        """One line when the model's context window is a guess (and the fix), else None.

        A server that does not say its window (and has not refused a prompt that
        stated it) is budgeted for a conservative default; never raises.
        """
        runtime = self._runtime
        try:
            guess = bool(getattr(runtime, "window_is_guess", False))
        except RecursaError as exc:
            # Only a notice: the turn that needs the server reports its failure.
            log.warning("Asking %s for its context window failed: %s", self.model_spec, exc)
            return None
        if runtime is None or not guess:
            return None
        return (
            f"The context window of {runtime.name} is a guess ({runtime.context_window} tokens): "
            "the server does not say its own. Set runtime.context_window "
            "(RECURSA_RUNTIME__CONTEXT_WINDOW) to the server's real window."
        )

    def _turn(
        self,
        conversation_id: int,
        text: str | None,
        *,
        params: GenerationParams | None,
        cancel: CancelToken,
        answer_stored: bool = False,
    ) -> Generator[StreamChunk, None, None]:
        turn = run_turn(
            self._store,
            self.settings,
            self.load_model,
            self._summarizer_for,
            conversation_id,
            text,
            params=params,
            cancel=cancel,
            vectors_for=self._vectors_for,
            background=TurnBackground(self._background) if self._background_ok else None,
            answer_stored=answer_stored,
        )
        try:
            yield from turn
        except TurnFailedError as exc:
            cause = exc.__cause__
            log.error(
                "Reply in conversation %s failed (model %s): %s",
                conversation_id,
                self.model_spec,
                f"{type(cause).__name__}: {cause}" if cause is not None else exc,
            )
            raise
