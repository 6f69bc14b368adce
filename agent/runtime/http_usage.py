"""The `Usage` of a reply from an OpenAI-compatible server, and what it tells about the counts.

`build_usage` joins recursa's own count of the prompt with the usage the
server reported: a server that counted noticeably fewer prompt tokens than
were sent most likely cut the prompt (a warning says so), and one that
counted about as many measures tiktoken's undercount, which the caller's
`measure` hook turns into a new margin. `unsent_params` warns about
generation parameters the OpenAI API has no field for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from recursa.agent.runtime.protocol import FinishReason, GenerationParams, Usage
from recursa.agent.runtime.remote_count import MarginCounter
from recursa.memory.tokens import TokenCounter

__all__ = [
    "MEASURE_MIN_TOKENS",
    "TRUNCATION_RATIO",
    "build_usage",
    "int_or_none",
    "unsent_params",
]

# tiktoken's undercount is measured only on prompts at least this long.
MEASURE_MIN_TOKENS = 64

# A server that counts fewer than this share of the tokens recursa counted most
# likely cut the prompt. The margin absorbs the honest difference between
# cl100k and the served model's own tokenizer.
TRUNCATION_RATIO = 0.9


def build_usage(
    local_count: int,
    server: dict[str, Any] | None,
    text: str,
    finish: FinishReason,
    start: float,
    first: float | None,
    params: GenerationParams,
    *,
    counter: TokenCounter,
    measure: Callable[[MarginCounter, float], None],
) -> Usage:
    """The usage of a reply (`start` from `time.perf_counter`, `first` the time to its first token).

    `counter` is the one `local_count` was counted with; `measure(counter,
    ratio)` is called with the server's count over tiktoken's when the prompt
    was long enough, and not truncated, to say something about the margin.
    """
    total = time.perf_counter() - start
    warnings = unsent_params(params)
    server_prompt = int_or_none((server or {}).get("prompt_tokens"))
    completion = int_or_none((server or {}).get("completion_tokens"))
    if completion is None:
        completion = counter.count_text(text) if text else 0
    details = (server or {}).get("prompt_tokens_details")
    cached = int_or_none(details.get("cached_tokens")) if isinstance(details, dict) else None
    raw = local_count
    if isinstance(counter, MarginCounter):
        raw = round(local_count / counter.scale)
        # Short prompts say little about a tokenizer, and a truncated one nothing.
        if (
            server_prompt is not None
            and raw >= MEASURE_MIN_TOKENS
            and server_prompt >= TRUNCATION_RATIO * raw
        ):
            measure(counter, server_prompt / raw)
    if server_prompt is not None and server_prompt < TRUNCATION_RATIO * raw:
        warnings.append(
            f"Possible silent truncation: the server counted {server_prompt} prompt tokens "
            f"but recursa sent about {raw} (counted with {counter.tokenizer_id}). "
            "The server probably cut the prompt to fit its context. Set the context "
            "window to the server's real limit (RuntimeOptions.context_window; vLLM "
            "--max-model-len, llama.cpp -c, Ollama num_ctx) so recursa budgets for it."
        )
    prompt_seen = server_prompt if server_prompt is not None else local_count
    reused = min(cached or 0, prompt_seen)
    decode_time = total - (first or 0.0)
    return Usage(
        prompt_tokens=local_count,
        completion_tokens=completion,
        prefill_tokens=prompt_seen - reused,
        reused_tokens=reused,
        time_to_first_token_s=first,
        decode_tokens_per_s=(completion / decode_time) if first and decode_time > 0 else None,
        total_s=total,
        finish_reason=finish,
        server_prompt_tokens=server_prompt,
        warnings=warnings,
    )


def unsent_params(params: GenerationParams) -> list[str]:
    """Warnings for parameters the OpenAI API has no field for (they are not sent)."""
    warnings = []
    if params.repetition_penalty != 1.0:
        warnings.append(
            "repetition_penalty is not part of the OpenAI chat API and was not sent; "
            "use the server's own setting instead."
        )
    if params.no_repeat_ngram_size:
        warnings.append("no_repeat_ngram_size is not part of the OpenAI chat API and was not sent.")
    return warnings


def int_or_none(value: Any) -> int | None:
    """`value` when it is an int (not a bool), else None: server fields are not trusted."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
