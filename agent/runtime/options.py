"""Runtime options: how to open a model (device, threads, context window, HTTP client settings).

One typed object is handed to whichever runtime a spec opens; each runtime reads
the fields that concern it and ignores the rest (the local runtime reads
`device`, `threads` and `precision`, the HTTP runtime `api_key_env`, `timeout_s` and the
retry settings; both honour `context_window`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# (message, fraction done 0..1 or None when unknown). Called for slow steps such
# as the first conversion of a GGUF file, so a UI can show what is happening.
ProgressCallback = Callable[[str, float | None], None]


class RuntimeOptions(BaseModel):
    """Settings for opening a runtime; every field has a working default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu", description="Where a local model runs; 'auto' picks CUDA when available."
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads for a local model; None keeps torch's default."
    )
    precision: str | None = Field(
        None,
        description=(
            "How a local model holds its weights: 'int4' or 'int8' (CPU, weight-only "
            "quantization with 16-bit activations: the fastest decode), 'float32', "
            "'float16w' (x86 CPU; float16 weights, float32 activations), 'bfloat16' or "
            "'float16'. None picks by the model: int4 for a 4-bit GGUF such as the "
            "embedded SmolLM2, int8 for an 8-bit one, float32 otherwise; bfloat16 on CUDA."
        ),
    )
    context_window: int | None = Field(
        None,
        ge=16,
        description=(
            "Override the model's context window in tokens. For HTTP models, set it to the "
            "server's real limit (vLLM --max-model-len, llama.cpp -c, Ollama num_ctx)."
        ),
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        min_length=1,
        description="Name of the environment variable holding the HTTP server's API key.",
    )
    timeout_s: float = Field(
        60.0,
        gt=0,
        description="HTTP timeout: for connecting and for each wait on the server's next bytes.",
    )
    max_retries: int = Field(
        3, ge=0, le=20, description="Retries on connection errors and HTTP 429/5xx."
    )
    retry_backoff_s: float = Field(
        0.5, ge=0, description="First retry delay; it doubles on each further retry."
    )
    max_retry_delay_s: float = Field(
        30.0,
        ge=0,
        description=(
            "Longest wait between retries. A server whose Retry-After asks for more is "
            "reported as an error instead of being waited for."
        ),
    )
